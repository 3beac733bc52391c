"""Continuous training's run: snapshot -> train -> evaluate -> candidate -> shadow, then it
stops for the admin's decision through the gate (DESIGN.md 7b). Triggers and the beat's check
are in ``mlcore.services.pipeline``.

Each step records its output on the row and a re-run skips finished steps, so the run's task
(``mlcore.pipeline_run``, training queue) is idempotent and resumable; a store that cannot be
reached fails the run with the reason and a retry time (``retrying``).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mlcore.models import DatasetVersion, Evaluation, ModelAlias, ModelVersion, PipelineRun, TrainingJob
from mlcore.selectors.rollout import rollout_policy
from mlcore.services.dataset_snapshots import DatasetStoreUnavailable, dataset_snapshot_create
from mlcore.services.datasets import dataset_version_ensure_current
from mlcore.services.gate import gate_check
from mlcore.services.pipeline import RUN_TASK, fresh_steps, last_sign, production_snapshot
from mlcore.services.promotion import alias_move
from mlcore.services.rollout import rollout_policy_update
from mlcore.services.training_jobs import RECIPE_FIELDS, TrainingJobError, training_job_create, training_job_run
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)


class PipelineStepError(RuntimeError):
    """A step cannot succeed as things stand (bad recipe, failed training): the run fails."""


# --- the run ---------------------------------------------------------------------------------


def _claim(run_id: int) -> PipelineRun | None:
    """queued/retrying (due) -> running under the lock; None when there is nothing to do now."""
    now = timezone.now()
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        if run.is_terminal:
            return None
        if run.state == PipelineRun.State.QUEUED:
            other = PipelineRun.objects.filter(name=run.name, state__in=PipelineRun.ACTIVE).exclude(pk=run.pk).first()
            if other is not None:
                run.message = f"waiting for run #{other.pk} ({other.get_state_display().lower()}) to finish"
                run.save(update_fields=["message", "updated_at"])
                return None
        elif run.state == PipelineRun.State.RETRYING:
            if run.retry_at and run.retry_at > now:
                return None
        elif run.state == PipelineRun.State.RUNNING:
            # A redelivery. A live worker keeps the run (or its training job) fresh: leave it.
            stale = timedelta(seconds=float(settings.TRAINING_STALE_SECONDS))
            last = last_sign(run)
            if now - last < stale:
                logger.warning("pipeline run %s: duplicate delivery while it runs; ignored", run.pk)
                return None
            logger.warning("pipeline run %s: resumed after its worker stopped (last sign %s)", run.pk, last)
        run.state = PipelineRun.State.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or now
        run.retry_at = None
        run.error = ""
        run.message = f"running (attempt {run.attempts})"
        run.save()
    return run


def _save_step(run_id: int, index: int, **changes: Any) -> PipelineRun:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        steps = list(run.steps) or fresh_steps()
        steps[index] = {**steps[index], **changes}
        run.steps = steps
        if changes.get("message"):
            run.message = f"{steps[index]['name']}: {changes['message']}"
        run.save(update_fields=["steps", "message", "updated_at"])
    return run


def _iso() -> str:
    return timezone.now().isoformat(timespec="seconds")


def pipeline_run_execute(*, run_id: int) -> PipelineRun:
    """Run (or resume) one pipeline run to its end state or its retry; the task's body."""
    run = _claim(run_id)
    if run is None:
        return PipelineRun.objects.get(pk=run_id)
    for index, step in enumerate(PipelineRun.STEPS):
        run = PipelineRun.objects.get(pk=run_id)
        if run.steps[index]["status"] in ("done", "skipped"):
            continue
        _save_step(run_id, index, status="running", started_at=_iso(), message="started")
        try:
            status, message, output = STEP_FUNCTIONS[step](run)
        except DatasetStoreUnavailable as exc:
            _save_step(run_id, index, status="failed", finished_at=_iso(), message=str(exc))
            return _fail(run_id, str(exc), retry=True)
        except (PipelineStepError, ValidationError, TrainingJobError) as exc:
            reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            _save_step(run_id, index, status="failed", finished_at=_iso(), message=reason)
            return _fail(run_id, f"{step}: {reason}", retry=False)
        except Exception as exc:  # the row must never stay "running": say what happened
            logger.exception("pipeline run %s: step %s failed", run_id, step)
            reason = f"unexpected error: {type(exc).__name__}: {exc}"
            _save_step(run_id, index, status="failed", finished_at=_iso(), message=reason)
            return _fail(run_id, f"{step}: {reason}", retry=False)
        _save_step(run_id, index, status=status, finished_at=_iso(), message=message, output=output)
    return _succeed(run_id)


def _succeed(run_id: int) -> PipelineRun:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        run.state = PipelineRun.State.SUCCEEDED
        run.finished_at = timezone.now()
        run.message = run.steps[-1]["message"] or "candidate in shadow"
        run.save()
        audit_event_create(actor=None, actor_label=f"pipeline_run:{run.pk}", action=AuditAction.PIPELINE_SUCCEEDED,
                           obj=run, details={"model_version": run.model_version, "training_job": run.training_job_id,
                                             "dataset_version": getattr(run.dataset_version, "slug", None)})
        _start_next(run.name)
    return run


def _fail(run_id: int, reason: str, *, retry: bool) -> PipelineRun:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        run.error = reason[:2000]
        if retry and run.attempts < int(settings.PIPELINE_MAX_ATTEMPTS):
            run.state = PipelineRun.State.RETRYING
            run.retry_at = timezone.now() + timedelta(seconds=int(settings.PIPELINE_RETRY_SECONDS))
            run.message = (f"failed: {reason}; retried at {run.retry_at.isoformat(timespec='seconds')} "
                           f"(attempt {run.attempts} of {settings.PIPELINE_MAX_ATTEMPTS})")
            action = AuditAction.PIPELINE_RETRY_SCHEDULED
        else:
            run.state = PipelineRun.State.FAILED
            run.finished_at = timezone.now()
            run.message = f"failed: {reason}" + (f" (after {run.attempts} attempts)" if retry else "")
            action = AuditAction.PIPELINE_FAILED
        run.save()
        audit_event_create(actor=None, actor_label=f"pipeline_run:{run.pk}", action=action, obj=run,
                           details={"reason": reason, "attempts": run.attempts,
                                    "retry_at": run.retry_at.isoformat() if run.retry_at else None})
        if run.state == PipelineRun.State.FAILED:
            _start_next(run.name)
    return run


def _start_next(name: str) -> None:
    waiting = PipelineRun.objects.filter(name=name, state=PipelineRun.State.QUEUED).first()
    if waiting is not None:
        waiting.message = "queued for the training worker (the run before it ended)"
        waiting.save(update_fields=["message", "updated_at"])
        enqueue_on_commit(RUN_TASK, run_id=waiting.pk)


# --- the steps: each returns (status, message, output) and may be re-run ----------------------


def _step_snapshot(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    if run.dataset_version_id:
        return "done", f"dataset version {run.dataset_version.slug}", {"dataset_version": run.dataset_version.slug}
    _when, prod_hash, base = production_snapshot(name=run.name)
    if base is None or base.status != DatasetVersion.Status.READY or base.kind != DatasetVersion.Kind.TRAINING:
        try:
            base = dataset_version_ensure_current()
        except (OSError, ValueError) as exc:
            raise DatasetStoreUnavailable(f"dataset store unreachable: {type(exc).__name__}: {exc}") from exc
    dataset = dataset_snapshot_create(
        base=base, feedback_store_uri=str(settings.DATASET_STORE_URI), slug=_snapshot_slug(run),
        lineage={"pipeline_run": run.pk, "production_manifest_hash": prod_hash}, actor_label=f"pipeline_run:{run.pk}",
        progress=_Heartbeat(run.pk))
    PipelineRun.objects.filter(pk=run.pk).update(dataset_version=dataset)
    lineage = dataset.options.get("lineage", {})
    return "done", (f"dataset version {dataset.slug}: {lineage.get('images', dataset.report.get('total', '?'))} "
                    f"images ({lineage.get('feedback_images', 0)} confirmed corrections) from {base.slug}, "
                    f"hash {dataset.manifest_hash[:12]}"), {"dataset_version": dataset.slug,
                                                           "manifest_hash": dataset.manifest_hash, "base": base.slug}


class _Heartbeat:
    """Stamps the run (``updated_at``) at most every few seconds while a step copies, so the
    beat can tell a live run from one whose worker died (``pipeline_check``)."""

    INTERVAL_S = 5.0

    def __init__(self, run_id: int) -> None:
        self.run_id, self._last = run_id, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self._last >= self.INTERVAL_S:
            self._last = time.monotonic()
            PipelineRun.objects.filter(pk=self.run_id).update(updated_at=timezone.now(),
                                                              message=f"snapshot: copied {done} of {total} images")


def _snapshot_slug(run: PipelineRun) -> str:
    """Unique per run even across databases (a restored or test database reuses primary keys)."""
    base = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in run.name.lower())[:40].strip("-_") or "model"
    return f"ct-{base}-{run.pk}-{run.created_at:%Y%m%d%H%M%S}"


# TrainConfig fields beyond the console form's that a retrain keeps from the production
# version (the starter's moving average of the weights, how its loss treats labels), with
# their types.
CARRIED_FIELDS = {"ema_decay": float, "ema_start_epoch": int, "label_smoothing": float, "mixup_alpha": float,
                  "focal_gamma": float}


def pipeline_recipe(*, name: str) -> dict[str, Any]:
    """The training recipe: the production version's (from its run's params; the starter's
    run records its recipe under ``recipe.``), else the starter recipe; ``PIPELINE_RECIPE``
    overrides any field (and may add ``TrainConfig`` extras such as ``max_train_batches``).
    A moving average that would start after the last epoch starts at a quarter of them."""
    recipe: dict[str, Any] = {}
    prod = (ModelAlias.objects.filter(name=name, alias=ModelAlias.Alias.PRODUCTION)
            .select_related("model_version").first())
    params = prod.model_version.params if prod else {}
    casts = {"image_size": int, "epochs": int, "batch_size": int, "seed": int, "lr": float, **CARRIED_FIELDS}
    for form, key in (*RECIPE_FIELDS.items(), *((k, k) for k in CARRIED_FIELDS)):
        value = params.get(key, params.get(f"recipe.{key}"))
        if value in (None, "", "None"):
            continue
        try:
            recipe[form] = casts[form](value) if form in casts else str(value)
        except (TypeError, ValueError):
            continue
    out = {**recipe, **dict(settings.PIPELINE_RECIPE or {})}
    if "ema_start_epoch" in out and out.get("epochs") is not None and out["ema_start_epoch"] >= int(out["epochs"]):
        out["ema_start_epoch"] = int(out["epochs"]) // 4
    return out


def _step_train(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    job = run.training_job
    if job is None:
        recipe = pipeline_recipe(name=run.name)
        with transaction.atomic():
            job = training_job_create(actor=None, actor_label=f"pipeline_run:{run.pk}",
                                      dataset_version=run.dataset_version, enqueue=False,
                                      include_feedback=True, registered_model_name=run.name, **recipe)
            PipelineRun.objects.filter(pk=run.pk).update(training_job=job)
    # On this worker, in this task: the training queue runs one thing at a time, so a job
    # queued behind this task would wait for it forever.
    if job.state == TrainingJob.State.QUEUED:
        job = training_job_run(job_id=job.pk)
    elif job.state == TrainingJob.State.RUNNING:
        job = training_job_run(job_id=job.pk)  # fails it when its worker died, else leaves it
    if job.state != TrainingJob.State.SUCCEEDED or not job.model_version:
        raise PipelineStepError(f"training job {job.pk} {job.state}: {job.failure_reason or 'no version registered'}")
    PipelineRun.objects.filter(pk=run.pk).update(model_version=job.model_version)
    return "done", f"training job {job.pk} registered v{job.model_version}", {"training_job": job.pk,
                                                                           "model_version": job.model_version}


def _version(run: PipelineRun) -> ModelVersion:
    run.refresh_from_db()
    mv = ModelVersion.objects.filter(name=run.name, version=run.model_version).first()
    if mv is None:
        raise PipelineStepError(f"version {run.model_version} of {run.name} is not in the registry mirror")
    return mv


def _step_evaluate(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    mv = _version(run)
    evaluation = (Evaluation.objects.filter(model_version=mv, dataset_version=run.dataset_version,
                                            status=Evaluation.Status.SUCCEEDED).order_by("-created_at").first())
    if evaluation is None:
        raise PipelineStepError(f"v{mv.version} has no evaluation report on {run.dataset_version.slug}'s locked set "
                                f"(training job {run.training_job_id}'s log says why)")
    f1 = evaluation.report.get("macro_f1")
    return "done", (f"evaluation {evaluation.pk}: n={evaluation.n}"
                    + (f", macro-F1 {f1:.3f}" if isinstance(f1, int | float) else "")), {"evaluation": evaluation.pk}


def _step_candidate(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    mv = _version(run)
    holder = ModelAlias.objects.filter(name=run.name, alias=ModelAlias.Alias.CANDIDATE).first()
    if holder is None or holder.model_version_id != mv.pk:
        # The job moves it after its evaluation; a re-run (or a job whose move failed) does it here.
        alias_move(actor=f"pipeline_run:{run.pk}", alias=ModelAlias.Alias.CANDIDATE, version=mv.version,
                   name=run.name, reason=f"continuous-training run {run.pk} ({run.trigger})")
    return "done", f"candidate -> v{mv.version}", {"candidate": mv.version}


def _step_shadow(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    mv = _version(run)
    policy = rollout_policy(name=run.name)
    if policy.shadow_candidate:  # already on: the candidate alias moved, shadow follows it
        return "done", f"candidate v{mv.version} in shadow on {policy.shadow_percent} % of studies (shadow was on)", {
            "shadow_percent": policy.shadow_percent}
    policy = rollout_policy_update(name=run.name, actor=f"pipeline_run:{run.pk}", shadow_candidate=True,
                                   reason=f"continuous-training run {run.pk}: candidate v{mv.version} in shadow")
    return "done", f"candidate v{mv.version} in shadow on {policy.shadow_percent} % of studies", {
        "shadow_percent": policy.shadow_percent}


def _step_decision(run: PipelineRun) -> tuple[str, str, dict[str, Any]]:
    mv = _version(run)
    verdict = gate_check(name=run.name, alias=ModelAlias.Alias.CANARY, version=mv.version)
    output = {"gate_passed": verdict.passed, "failures": [c.name for c in verdict.failures]}
    if not settings.PIPELINE_AUTO_CANARY:
        return "done", (f"awaiting the admin's decision through the gate (canary gate "
                        f"{'passes' if verdict.passed else 'fails: ' + ', '.join(output['failures'])})"), output
    if not verdict.passed:
        return "done", ("automatic canary not taken: the gate fails on "
                        f"{', '.join(output['failures'])}; the admin decides"), output
    record = alias_move(actor=f"pipeline_run:{run.pk}", alias=ModelAlias.Alias.CANARY, version=mv.version,
                        name=run.name, reason=f"continuous-training run {run.pk}: every gate criterion passes "
                                              "(automatic canary is on)")
    percent = int(settings.PIPELINE_CANARY_PERCENT)
    rollout_policy_update(name=run.name, actor=f"pipeline_run:{run.pk}", canary_percent=percent,
                          reason=f"automatic canary of v{mv.version}")
    return "done", f"every gate criterion passes: canary -> v{mv.version} at {percent} %", {
        **output, "change_record": record.pk}


STEP_FUNCTIONS = {
    "snapshot": _step_snapshot,
    "train": _step_train,
    "evaluate": _step_evaluate,
    "candidate": _step_candidate,
    "shadow": _step_shadow,
    "decision": _step_decision,
}
