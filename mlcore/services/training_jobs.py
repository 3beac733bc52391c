"""Training jobs: create (validated, queued on the ``training`` queue), run (the task body,
also called inline by ``manage.py train_model``), cancel, and reap jobs whose worker died.

A job moves queued -> running -> succeeded | failed | cancelled, and only through these
functions. The run itself is hours long, so it is never inside a transaction: the row is
claimed under a lock, progress is written in short updates, and the end state is written
under the lock again. A heartbeat thread stamps the row while the worker lives; the reaper
fails a job whose stamps stopped, so a SIGKILLed worker never leaves a job ``running``.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
import warnings
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mlcore.models import DatasetVersion, ModelAlias, ModelVersion, TrainingJob
from mlcore.selectors.evaluations import default_evaluation_dataset
from mlcore.services.comparison import comparison_compute
from mlcore.services.evaluations import evaluation_request, evaluation_run
from mlcore.services.promotion import alias_move
from mlcore.services.training import model_train, train_config
from mlcore.services.training_runtime import Heartbeat, JobProgress, LogTail, one_line
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

RUN_TASK = "mlcore.training_job_run"
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
# The form's fields -> TrainConfig's names (only ``variant`` differs).
RECIPE_FIELDS = {"variant": "model_name", "image_size": "image_size", "epochs": "epochs",
                 "batch_size": "batch_size", "seed": "seed", "lr": "lr", "precision": "precision"}
REDELIVERED_REASON = ("the worker running this job stopped (redelivered after a crash); "
                      "start a new job")


class TrainingJobError(ValueError):
    """Bad input for a training job; ``errors`` maps each bad field to its message."""

    def __init__(self, errors: dict[str, str] | str) -> None:
        self.errors = {"__all__": errors} if isinstance(errors, str) else dict(errors)
        super().__init__("; ".join(f"{k}: {v}" if k != "__all__" else v
                                   for k, v in self.errors.items()))


def recipe_defaults() -> dict[str, Any]:
    """The starter recipe's values of the form's fields (``TrainConfig``'s defaults)."""
    from mlcore.ml.training.config import TrainConfig  # torch (via the model registry)

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {form: defaults[cfg] for form, cfg in RECIPE_FIELDS.items()}


def _check_recipe(recipe: dict[str, Any]) -> dict[str, str]:
    from mlcore.ml.models import list_models  # torch: the variants are registered on import

    errors: dict[str, str] = {}
    variants = list_models()
    if recipe["variant"] not in variants:
        errors["variant"] = (f"unknown variant {recipe['variant']!r}; accepted: "
                             f"{', '.join(variants)}")

    def int_in(name: str, low: int, high: int, *, optional: bool = False) -> None:
        value = recipe[name]
        if value is None and optional:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors[name] = f"must be a whole number from {low} to {high}, got {value!r}"

    int_in("image_size", 32, 512, optional=True)
    int_in("epochs", 1, 500)
    int_in("batch_size", 1, 512)
    int_in("seed", 0, 2**32 - 1)
    lr = recipe["lr"]
    if not isinstance(lr, int | float) or isinstance(lr, bool) or not 0 < lr <= 1:
        errors["lr"] = f"must be greater than 0 and at most 1, got {lr!r}"
    if recipe["precision"] not in PRECISIONS:
        errors["precision"] = (f"unknown precision {recipe['precision']!r}; accepted: "
                               f"{', '.join(PRECISIONS)}")
    return errors


def _check_dataset(dataset_version: DatasetVersion | None) -> str | None:
    if dataset_version is None:
        return None
    name = dataset_version.slug
    if dataset_version.status != DatasetVersion.Status.READY:
        return (f"dataset version {name} is {dataset_version.get_status_display().lower()}, "
                "not ready; wait for its import to finish")
    if dataset_version.kind != DatasetVersion.Kind.TRAINING:
        return (f"dataset version {name} is an evaluation-only set; it is never trained on "
                "(choose a training set)")
    return None


def _check_store(store_uri: str, *, label: str, include_feedback: bool) -> str | None:
    """Empty train/val split, or a class the store holds without a single train image."""
    from mlcore.ml.data import open_store  # the pure data package (Pillow, numpy)

    try:
        report = open_store(store_uri).split_report()
    except (ValueError, OSError) as exc:
        return f"dataset {label} cannot be read: {exc}"
    problems = []
    empty = [s for s in ("train", "val") if not report.totals.get(s)]
    if empty:
        problems.append(f"empty split(s): {', '.join(empty)}")
    train_counts = dict(report.counts.get("train", {}))
    if include_feedback:
        for key, n in report.counts.get("feedback", {}).items():
            train_counts[key] = train_counts.get(key, 0) + n
    present = {key for split, per_class in report.counts.items() if split != "feedback"
               for key, n in per_class.items() if n}
    no_train = sorted(k for k in present if not train_counts.get(k))
    if no_train and "train" not in empty:
        problems.append(f"class(es) without train images: {', '.join(no_train)}")
    if problems:
        return f"dataset {label} cannot be trained on: " + "; ".join(problems)
    return None


def training_job_create(*, actor: Any, actor_label: str = "",
                        dataset_version: DatasetVersion | None, enqueue: bool = True,
                        **recipe: Any) -> TrainingJob:
    """Validate a recipe against a dataset version and queue a job for it.

    ``recipe``: the form's fields (``variant``, ``image_size``, ``epochs``, ``batch_size``,
    ``seed``, ``lr``, ``precision``; missing ones take the starter recipe's values) plus,
    for the CLI, any other ``TrainConfig`` field (``store_uri`` when there is no dataset
    version). ``TrainingJobError`` names every bad field; then nothing is written.
    ``enqueue=False`` leaves the job for the caller to run inline (``training_job_run``).
    """
    values = {**recipe_defaults(), **{k: v for k, v in recipe.items() if k in RECIPE_FIELDS}}
    extra = {k: v for k, v in recipe.items() if k not in RECIPE_FIELDS}
    if dataset_version is not None:
        extra["store_uri"] = dataset_version.store_uri
    store_uri = str(extra.get("store_uri") or settings.DATASET_STORE_URI)
    label = dataset_version.slug if dataset_version is not None else store_uri
    errors = _check_recipe(values)
    problem = _check_dataset(dataset_version) or _check_store(
        store_uri, label=label, include_feedback=bool(extra.get("include_feedback")))
    if problem:
        errors["dataset_version"] = problem
    if errors:
        raise TrainingJobError(errors)
    try:
        config = train_config(**{RECIPE_FIELDS[k]: v for k, v in values.items()}, **extra)
    except TypeError as exc:  # an unknown TrainConfig keyword
        raise TrainingJobError(str(exc)) from None
    except ValueError as exc:
        raise TrainingJobError(str(exc)) from None
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        job = TrainingJob.objects.create(
            config=config.to_dict(), dataset_version=dataset_version, created_by=user,
            created_label=actor_label, epochs=config.epochs,
        )
        # Lineage on the MLflow run: this job, and the version serving when it was asked
        # for (the version page's "parent": the one the new version is trained to replace).
        parent = ModelAlias.objects.filter(name=config.registered_model_name, alias=ModelAlias.Alias.PRODUCTION
                                           ).values_list("model_version__version", flat=True).first()
        job.config["run_tags"] = {**job.config.get("run_tags", {}), "radviewer.training_job": str(job.pk),
                                  **({"radviewer.parent_version": parent} if parent else {})}
        job.save(update_fields=["config"])
        audit_event_create(
            actor=user, actor_label="" if user else actor_label,
            action=AuditAction.TRAINING_JOB_CREATED, obj=job,
            details={"dataset_version": label, **values},
        )
        if enqueue:
            enqueue_on_commit(RUN_TASK, job_id=job.pk)
    return job


def training_job_cancel(*, job: TrainingJob, actor: Any) -> TrainingJob:
    """Ask a job to stop: a queued job is cancelled at once, a running one stops at its
    next poll (within seconds) and ends ``cancelled`` with nothing registered."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    label = "" if user else str(actor or "system")
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.is_terminal:
            raise TrainingJobError(f"training job {job.pk} has already {job.state}; "
                                   "there is nothing to cancel")
        if not job.cancel_requested:
            job.cancel_requested = True
            audit_event_create(actor=user, actor_label=label, obj=job,
                               action=AuditAction.TRAINING_JOB_CANCEL_REQUESTED,
                               details={"state": job.state})
        fields_ = ["cancel_requested"]
        if job.state == TrainingJob.State.QUEUED:
            job.state = TrainingJob.State.CANCELLED
            job.finished_at = timezone.now()
            fields_ += ["state", "finished_at"]
            audit_event_create(actor=user, actor_label=label, obj=job,
                               action=AuditAction.TRAINING_JOB_CANCELLED,
                               details={"while": "queued"})
        job.save(update_fields=fields_)
    return job


def _finish(job_id: int, state: str, *, action: AuditAction, log: LogTail,
            reason: str = "", details: dict[str, Any] | None = None,
            **values: Any) -> TrainingJob | None:
    """Write a running job's end state under the lock, unless it already ended (the reaper
    may have failed it while a slow registration was still going)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.state != TrainingJob.State.RUNNING:
            return None
        job.state = state
        job.finished_at = timezone.now()
        job.failure_reason = reason
        job.log_tail = log.text()
        for name, value in values.items():
            setattr(job, name, value)
        job.save()
        audit_event_create(actor=None, actor_label=f"training_job:{job.pk}", obj=job,
                           action=action,
                           details={"reason": reason, **(details or {})} if reason
                           else details or {})
    return job


def _claim(job_id: int) -> TrainingJob | None:
    """queued -> running under the lock; None when there is nothing (more) to run."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.is_terminal:
            return None
        now = timezone.now()
        if job.state == TrainingJob.State.RUNNING:
            # A redelivery: acks_late re-queues the message of a worker that died mid-job,
            # and its progress died with it (a silent restart would train twice). But Redis
            # also re-delivers a message still being worked on once its visibility timeout
            # passes: a job whose heartbeat is fresh has a live worker and is left to it.
            last = job.heartbeat_at or job.started_at
            stale = timedelta(seconds=float(settings.TRAINING_STALE_SECONDS))
            if last is not None and now - last < stale:
                logger.warning("training job %s: duplicate delivery while its worker %s is "
                               "alive (last heartbeat %s); ignored", job.pk, job.worker, last)
                return None
            job.state, job.finished_at, job.failure_reason = (
                TrainingJob.State.FAILED, now, REDELIVERED_REASON)
            job.save(update_fields=["state", "finished_at", "failure_reason"])
            audit_event_create(actor=None, actor_label=f"training_job:{job.pk}", obj=job,
                               action=AuditAction.TRAINING_JOB_FAILED,
                               details={"reason": REDELIVERED_REASON, "worker": job.worker})
            return None
        if job.cancel_requested:
            job.state, job.finished_at = TrainingJob.State.CANCELLED, now
            job.save(update_fields=["state", "finished_at"])
            audit_event_create(actor=None, actor_label=f"training_job:{job.pk}", obj=job,
                               action=AuditAction.TRAINING_JOB_CANCELLED,
                               details={"while": "queued"})
            return None
        job.state = TrainingJob.State.RUNNING
        job.attempts += 1
        job.worker = f"{socket.gethostname()}:{os.getpid()}"
        job.started_at = job.heartbeat_at = now
        job.save(update_fields=["state", "attempts", "worker", "started_at", "heartbeat_at"])
    return job


def training_job_run(*, job_id: int, echo: Callable[[str], None] | None = None
                     ) -> TrainingJob:
    """Run a queued job to its end state (the ``mlcore.training_job_run`` task's body).

    Idempotent: an ended job is returned as it is; a job found ``running`` is a redelivery,
    failed with a reason when its heartbeat is stale (the worker died) and left alone when
    it is fresh (a duplicate delivery). ``echo`` gets each log line as it is written (the
    CLI prints them).
    """
    job = _claim(job_id)
    if job is None:
        return TrainingJob.objects.get(pk=job_id)
    from mlcore.ml.training import TrainConfig  # torch: only in the process that trains

    heartbeat = Heartbeat(job.pk, float(settings.TRAINING_HEARTBEAT_SECONDS))
    heartbeat.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            progress = JobProgress(job, echo, caught)
            try:
                # An alias the recipe asks for is moved after training, through the gate, like
                # every other move (training itself would set it in MLflow directly).
                config = TrainConfig.from_dict({**job.config, "alias": None})
                progress.say(f"training {config.model_name} on {config.store_uri} for "
                             f"{config.epochs} epochs (job {job.pk}, worker {job.worker})")
                result = model_train(
                    config=config, actor=job.created_by,
                    actor_label=job.created_label or f"training_job:{job.pk}",
                    details={"training_job": job.pk}, on_epoch=progress.on_epoch,
                    # Ray reports through its own workers: no step progress, no cancel.
                    **({"on_step": progress.on_step, "should_stop": progress.should_stop}
                       if config.backend == "local" else {}))
                progress.drain_warnings()
            except Exception as exc:  # any failure ends the job, with its reason
                progress.drain_warnings()
                progress.log.add(traceback.format_exc())
                reason = one_line(exc)[:1000]
                if echo is not None:
                    echo(f"failed: {reason}")
                return _finish(job_id, TrainingJob.State.FAILED, log=progress.log,
                               action=AuditAction.TRAINING_JOB_FAILED, reason=reason
                               ) or TrainingJob.objects.get(pk=job_id)
        if result.cancelled:
            progress.say("cancelled on request; nothing was registered")
            return _finish(job_id, TrainingJob.State.CANCELLED, log=progress.log,
                           action=AuditAction.TRAINING_JOB_CANCELLED,
                           details={"run_id": result.run_id}, run_id=result.run_id
                           ) or TrainingJob.objects.get(pk=job_id)
        version = result.model_version or ""
        if version:
            progress.say(f"registered {config.registered_model_name} version {version}")
            # The version is on the row before its follow-up steps (evaluation, comparison,
            # candidate), which the job still counts as its own: it ends succeeded after them.
            TrainingJob.objects.filter(pk=job_id).update(
                run_id=result.run_id, model_name=config.registered_model_name, model_version=version,
                log_tail=progress.log.text())

            def say(line: str) -> None:
                progress.say(line)
                TrainingJob.objects.filter(pk=job_id).update(log_tail=progress.log.text())

            try:
                training_job_after_registration(job=TrainingJob.objects.get(pk=job_id), say=say)
            except Exception as exc:  # the version exists: say what did not follow
                say(f"after registration: {one_line(exc)}")
        done = _finish(job_id, TrainingJob.State.SUCCEEDED, log=progress.log,
                       action=AuditAction.TRAINING_JOB_SUCCEEDED,
                       details={"run_id": result.run_id, "model_version": version},
                       run_id=result.run_id, model_name=config.registered_model_name,
                       model_version=version)
        if done is None:  # the reaper failed it meanwhile; its reason stands
            return TrainingJob.objects.get(pk=job_id)
        done.refresh_from_db()
        return done
    finally:
        heartbeat.stop()


def training_job_after_registration(*, job: TrainingJob,
                                    say: Callable[[str], None] | None = None) -> None:
    """What follows a job's new version: its evaluation report on the locked set of the
    dataset it trained on (its own record), the paired comparison with the version in
    production on that set (so the gate and the comparison page have their figures), then
    ``candidate`` (or the alias the recipe names, e.g. ``train_model --alias``) through the
    gate (a candidate needs its report; a blocked move is said in the log). Each step says what it did in the
    job's log; a failing step stops the ones after it and says why."""
    say = say or (lambda _line: None)
    mv = ModelVersion.objects.get(name=job.model_name, version=job.model_version)
    dataset = job.dataset_version or default_evaluation_dataset(version=mv)
    if dataset is None:
        say("no ready dataset version to evaluate on: the version stays without an alias")
        return
    actor = job.created_by
    label = "" if actor else (job.created_label or f"training_job:{job.pk}")
    say(f"evaluating v{mv.version} on the locked set of {dataset.slug}")
    evaluation = evaluation_request(model_version=mv, dataset_version=dataset, actor=actor,
                                    actor_label=label, enqueue=False)
    evaluation = evaluation_run(evaluation_id=evaluation.pk)
    if evaluation.status != evaluation.Status.SUCCEEDED:
        say(f"evaluation {evaluation.pk} failed: {evaluation.failure_reason}")
        return
    ece = evaluation.report.get("ece")
    say(f"evaluation {evaluation.pk}: n={evaluation.n}, ECE " + ("undefined" if ece is None else f"{ece:.3f}"))
    champion = ModelAlias.objects.filter(name=mv.name, alias=ModelAlias.Alias.PRODUCTION
                                         ).select_related("model_version").first()
    if champion is not None and champion.model_version_id != mv.pk:
        comparison_compute(champion=champion.model_version, challenger=mv, dataset_version=dataset,
                           actor=actor)
        say(f"compared with production v{champion.model_version.version} on the same set")
    target = job.config.get("alias") or ModelAlias.Alias.CANDIDATE
    record = alias_move(actor=actor or label, alias=target, version=mv.version,
                        name=mv.name, reason=f"trained by training job {job.pk}")
    say(f"{target} -> v{mv.version} (change record {record.pk})")


def training_jobs_reap(*, stale_after_s: float | None = None) -> list[int]:
    """Fail every running job whose heartbeat (or start) is older than ``stale_after_s``
    (default ``TRAINING_STALE_SECONDS``): its worker stopped without ending it. Returns the
    failed jobs' ids."""
    stale = float(settings.TRAINING_STALE_SECONDS if stale_after_s is None else stale_after_s)
    cutoff = timezone.now() - timedelta(seconds=stale)
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    reaped = []
    for job_id in TrainingJob.objects.filter(silent, state=TrainingJob.State.RUNNING
                                             ).values_list("pk", flat=True):
        with transaction.atomic():
            job = TrainingJob.objects.select_for_update().get(pk=job_id)
            last = job.heartbeat_at or job.started_at
            if job.state != TrainingJob.State.RUNNING or (last and last >= cutoff):
                continue  # it ended, or stamped, since the query
            reason = ("worker stopped responding; last heartbeat at "
                      f"{last.isoformat(timespec='seconds') if last else 'never'}")
            job.state, job.finished_at, job.failure_reason = (
                TrainingJob.State.FAILED, timezone.now(), reason)
            job.save(update_fields=["state", "finished_at", "failure_reason"])
            audit_event_create(actor=None, actor_label="training_jobs_reap", obj=job,
                               action=AuditAction.TRAINING_JOB_FAILED,
                               details={"reason": reason, "worker": job.worker})
            reaped.append(job.pk)
    return reaped
