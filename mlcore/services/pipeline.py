"""Continuous training: the triggers (corrections, schedule, drift, the admin) and what they
count; the run itself (snapshot -> train -> evaluate -> candidate -> shadow, then the admin's
decision through the gate, DESIGN.md 7b) is in ``mlcore.services.pipeline_run``.

One run at a time per registered model: a trigger while a run is in progress (or waiting to
be retried) writes a ``queued`` run that says what it waits for; a further trigger while one
is queued joins it (its details list every trigger). The run's task (``mlcore.pipeline_run``,
training queue) is idempotent and resumable: each step records its output on the row, and a
re-run skips finished steps (the snapshot's dataset version, the training job, ...). A store
that cannot be reached fails the run with the reason and a retry time (``retrying``), which
the beat task (``mlcore.pipeline_check``) honours; nothing is half-written (the snapshot is
all or nothing, see ``dataset_snapshot_create``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from mlcore.models import DatasetVersion, ModelAlias, PipelineRun, ReviewOutcome
from mlcore.services.datasets import canonical_store_uri
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

RUN_TASK = "mlcore.pipeline_run"
Step = dict[str, Any]


# --- triggers --------------------------------------------------------------------------------


def _actor(actor: Any) -> tuple[Any, str]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return user, ("" if user else (str(actor) if actor else "system:pipeline"))


def fresh_steps() -> list[Step]:
    return [{"name": n, "status": "pending", "started_at": None, "finished_at": None, "message": "",
             "output": {}} for n in PipelineRun.STEPS]


def _active(name: str) -> PipelineRun | None:
    return PipelineRun.objects.filter(name=name, state__in=PipelineRun.ACTIVE).first()


def pipeline_trigger(*, kind: str, actor: Any = None, reason: str = "", details: dict[str, Any] | None = None,
                     name: str | None = None) -> PipelineRun:
    """Start a continuous-training run (``kind``: manual | corrections | drift | schedule).

    Returns the run: a new one, queued for the training worker at once when none is in
    progress, or waiting (``queued``, its message naming the run it waits for) when one is;
    a trigger while a run already waits joins that run (recorded in its details) instead of
    stacking another. Raises ``ValidationError`` for an unknown kind (nothing written).
    """
    if kind not in PipelineRun.Trigger.values:
        raise ValidationError({"kind": f"unknown trigger {kind!r}; accepted: {', '.join(PipelineRun.Trigger.values)}"})
    name = name or settings.MLFLOW_REGISTERED_MODEL
    user, label = _actor(actor)
    entry = {"kind": kind, "by": user.get_username() if user else label, "reason": reason,
             "at": timezone.now().isoformat(timespec="seconds"), **({"details": details} if details else {})}
    for _attempt in range(3):
        try:
            with transaction.atomic():
                waiting = (PipelineRun.objects.select_for_update()
                           .filter(name=name, state=PipelineRun.State.QUEUED).first())
                if waiting is not None:
                    waiting.details = {**waiting.details,
                                       "joined": [*waiting.details.get("joined", []), entry]}
                    waiting.save(update_fields=["details", "updated_at"])
                    audit_event_create(actor=user, actor_label=label, action=AuditAction.PIPELINE_TRIGGERED,
                                       obj=waiting, details={**entry, "joined_run": waiting.pk})
                    return waiting
                active = _active(name)
                run = PipelineRun.objects.create(
                    name=name, trigger=kind, reason=reason, details={"trigger": entry},
                    state=PipelineRun.State.QUEUED, steps=fresh_steps(), created_by=user,
                    message=(f"waiting for run #{active.pk} ({active.get_state_display().lower()}) to finish"
                             if active else "queued for the training worker"),
                )
                audit_event_create(actor=user, actor_label=label, action=AuditAction.PIPELINE_TRIGGERED, obj=run,
                                   details={**entry, **({"waits_for": active.pk} if active else {})})
                if active is None:
                    enqueue_on_commit(RUN_TASK, run_id=run.pk)
                return run
        except IntegrityError:  # a concurrent trigger queued one a moment ago: join it
            continue
    raise RuntimeError("could not queue a pipeline run after 3 concurrent attempts")


def pipeline_trigger_from_drift(*, detector: str = "", model_version: str = "", report_id: int | None = None,
                                reason: str = "") -> PipelineRun:
    """The drift check's hook: a drift alarm starts (or joins) a run."""
    return pipeline_trigger(kind=PipelineRun.Trigger.DRIFT, actor="system:drift_check",
                            reason=reason or f"drift alarm ({detector or 'detector'}) on v{model_version}",
                            details={"detector": detector, "model_version": model_version, "report": report_id})


def drift_alarm_retrains(report: Any) -> None:
    """The hook ``mlcore.apps`` registers with the drift checks (``settings.PIPELINE_ON_DRIFT``)."""
    pipeline_trigger_from_drift(detector=report.detector, model_version=report.model_version, report_id=report.pk)


# --- what the triggers count -----------------------------------------------------------------


def production_snapshot(*, name: str | None = None) -> tuple[datetime | None, str, DatasetVersion | None]:
    """(when the production version's training data was snapshotted, its manifest hash, its
    dataset version when the app knows the store). The time is the dataset version's
    ``finished_at`` (or creation); without a known store, the version's registration time."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    alias = (ModelAlias.objects.filter(name=name, alias=ModelAlias.Alias.PRODUCTION)
             .select_related("model_version").first())
    if alias is None:
        return None, "", None
    mv = alias.model_version
    params = mv.params or {}
    store_uri = str(params.get("store_uri") or "")
    dataset = None
    if store_uri:
        try:
            uri = canonical_store_uri(store_uri)
        except (ValueError, OSError):
            uri = store_uri
        dataset = DatasetVersion.objects.filter(store_uri=uri).first()
    manifest_hash = _params_manifest_hash(params) or (dataset.manifest_hash if dataset else "")
    when = (dataset.finished_at or dataset.created_at) if dataset else mv.registered_at
    return when, manifest_hash, dataset


def _params_manifest_hash(params: dict[str, Any]) -> str:
    data = params.get("data")
    if isinstance(data, dict):
        return str(data.get("manifest_hash", ""))
    if isinstance(data, str) and "manifest_hash" in data:
        import ast
        import json

        for parse in (json.loads, ast.literal_eval):
            try:
                return str(parse(data).get("manifest_hash", ""))
            except (ValueError, SyntaxError, AttributeError):
                continue
    return ""


def corrections_since_snapshot(*, name: str | None = None) -> tuple[int, datetime | None]:
    """Confirmed corrections (a reader gave another class than the AI's top class; UI reviews
    and API feedback alike, both written as ``ReviewOutcome`` rows by ``review_create``) made
    after the later of the production version's data snapshot and the last corrections-
    triggered run (its corrections are already in that run's snapshot). Returns (count, since)."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    since, _hash, _dataset = production_snapshot(name=name)
    last_run = PipelineRun.objects.filter(name=name, trigger=PipelineRun.Trigger.CORRECTIONS).aggregate(
        at=Max("created_at"))["at"]
    if last_run is not None and (since is None or last_run > since):
        since = last_run
    qs = ReviewOutcome.objects.filter(model_name=name, verdict="corrected").exclude(confirmed_class="")
    if since is not None:
        qs = qs.filter(updated_at__gt=since)
    n = sum(1 for p, c in qs.values_list("predicted_class", "confirmed_class") if p != c)
    return n, since


def pipeline_check(*, name: str | None = None, now: datetime | None = None) -> list[PipelineRun]:
    """The beat task's body: retry runs whose retry time has come, start a queued run no
    worker has (its message was lost), and fire the corrections and schedule triggers.
    Returns the runs it started or retried."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    now = now or timezone.now()
    touched: list[PipelineRun] = []
    for run in PipelineRun.objects.filter(name=name, state=PipelineRun.State.RETRYING, retry_at__lte=now):
        enqueue_on_commit(RUN_TASK, run_id=run.pk)
        touched.append(run)
    for run in PipelineRun.objects.filter(name=name, state=PipelineRun.State.RUNNING).select_related("training_job"):
        if now - last_sign(run) >= timedelta(seconds=float(settings.TRAINING_STALE_SECONDS)):
            # its worker died and no broker redelivered the task: resume it (finished steps stay)
            enqueue_on_commit(RUN_TASK, run_id=run.pk)
            touched.append(run)
    if _active(name) is None:
        waiting = PipelineRun.objects.filter(name=name, state=PipelineRun.State.QUEUED).first()
        if waiting is not None:
            enqueue_on_commit(RUN_TASK, run_id=waiting.pk)
            touched.append(waiting)
    busy = PipelineRun.objects.filter(name=name, state__in=(*PipelineRun.ACTIVE, PipelineRun.State.QUEUED)).exists()
    threshold = int(settings.PIPELINE_CORRECTIONS)
    if threshold > 0 and not busy:
        count, since = corrections_since_snapshot(name=name)
        if count >= threshold:
            touched.append(pipeline_trigger(
                kind=PipelineRun.Trigger.CORRECTIONS, actor="system:pipeline_check", name=name,
                reason=f"{count} confirmed corrections since {since.isoformat(timespec='seconds') if since else 'ever'}"
                       f" (threshold {threshold})",
                details={"corrections": count, "since": since.isoformat() if since else None,
                         "threshold": threshold}))
            busy = True
    hours = int(settings.PIPELINE_SCHEDULE_HOURS)
    if hours > 0 and not busy:
        last = PipelineRun.objects.filter(name=name, trigger=PipelineRun.Trigger.SCHEDULE).aggregate(
            at=Max("created_at"))["at"]
        if last is None or now - last >= timedelta(hours=hours):
            touched.append(pipeline_trigger(kind=PipelineRun.Trigger.SCHEDULE, actor="system:pipeline_check",
                                            name=name, reason=f"scheduled every {hours} h"))
    return touched


def last_sign(run: PipelineRun) -> datetime:
    """When the run last showed life: its own stamp, or its training job's heartbeat."""
    job = run.training_job
    return max(t for t in (run.updated_at, job.heartbeat_at if job else None, job.finished_at if job else None)
               if t is not None)
