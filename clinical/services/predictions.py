"""Prediction lifecycle: request (queued) -> running -> succeeded | failed (retryable)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clinical.models import Image, Prediction, Study
from clinical.selectors.overlays import attribution_key, prediction_classes
from clinical.selectors.predictions import prediction_cutoffs
from clinical.services.notifications import study_ready
from clinical.services.reviews import review_outcomes_record
from clinical.services.triage import study_triage_fields
from mlcore.services.drift import DriftError, drift_observation_record
from mlcore.services.inference import (
    ATTRIBUTION_METHODS,
    NoModelAvailable,
    TriageOutput,
    choose_model,
    shadow_route,
)
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib import metrics
from radviewer.lib.tasks import enqueue_on_commit

log = logging.getLogger(__name__)

# Sent by name (clinical.tasks): see radviewer.lib.tasks.enqueue_on_commit.
RUN_PREDICTION, RUN_ATTRIBUTION = "clinical.run_prediction", "clinical.run_attribution"
# clinical.run_prediction's limits (the task declares them; the reaper counts on the hard one).
RUN_PREDICTION_SOFT_LIMIT_S = 120
RUN_PREDICTION_HARD_LIMIT_S = RUN_PREDICTION_SOFT_LIMIT_S + 30


def _send(prediction_id: int, *, shadow: bool = False) -> None:
    """Send the prediction's task once the transaction commits. A broker that refuses it
    then is logged, not raised: the row is committed as queued, and
    :func:`predictions_recover` sends it again once its message is overdue. A shadow
    prediction goes at low priority: the inference worker takes waiting production work first."""
    enqueue_on_commit(RUN_PREDICTION, swept=True, low_priority=shadow, prediction_id=prediction_id)


def _is_shadow(prediction: Prediction) -> bool:
    return prediction.arm == Prediction.Arm.SHADOW


def prediction_request(*, image: Image, new_image: bool = False) -> Prediction:
    """Queue triage of ``image`` on the model the inference service routes its study to.

    With no production model, a failed prediction records why, so the reader sees the
    reason and can retry once a model is registered. ``new_image``: the image was created in
    this transaction, so it has no prediction yet and the row is inserted without a lookup.
    """
    try:
        route = choose_model(study_uid=image.study.uid)
    except NoModelAvailable as exc:
        prediction, _ = Prediction.objects.update_or_create(
            image=image, model_name=settings.MLFLOW_REGISTERED_MODEL, model_version="",
            defaults={"status": Prediction.Status.FAILED, "failure_reason": str(exc)},
        )
        _study_refresh(image.study)
        return prediction
    # Created already queued (one INSERT): the message goes on commit, and a row whose
    # message is lost is re-sent by the sweeper like any queued one.
    fields = {"arm": route.arm, "status": Prediction.Status.QUEUED, "queued_at": timezone.now()}
    if new_image:
        prediction, created = Prediction.objects.create(
            image=image, model_name=route.name, model_version=route.version, **fields), True
    else:
        prediction, created = Prediction.objects.get_or_create(
            image=image, model_name=route.name, model_version=route.version, defaults=fields)
    if not created and _is_shadow(prediction) and route.arm != Prediction.Arm.SHADOW:
        # The candidate that ran in shadow on this image now serves it (it became canary or
        # production): one prediction per (image, version), so its result is shown now.
        Prediction.objects.filter(pk=prediction.pk).update(arm=route.arm)
        prediction.refresh_from_db()
        if prediction.status == Prediction.Status.SUCCEEDED:
            _study_refresh(image.study)
    if created:
        _send(prediction.pk)
    elif prediction.status == Prediction.Status.FAILED:
        # A failed one starts a fresh round of attempts (the reaper counts them).
        Prediction.objects.filter(pk=prediction.pk).update(
            status=Prediction.Status.QUEUED, failure_reason="", queued_at=timezone.now(), task_id="", attempts=0,
        )
        prediction.refresh_from_db()
        _send(prediction.pk)
    return prediction


@transaction.atomic
def prediction_retry(*, image: Image, actor: Any, request: Any = None) -> Prediction:
    """Re-run triage after a failure, or of a prediction stuck queued or running past the
    sweeper's limits (its message or its worker was lost). A succeeded prediction, or one
    that is legitimately queued or running, is never duplicated."""
    latest = image.latest_prediction()
    if latest and latest.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING):
        stuck = _requeue_if_stuck(latest.pk, fresh_round=True)
        if stuck is not None:
            Study.objects.filter(pk=image.study_id).update(status=Study.Status.PROCESSING)
            audit_event_create(actor=actor, action=AuditAction.PREDICTION_RETRIED, obj=stuck, request=request)
            return stuck
        return latest
    if latest and latest.status == Prediction.Status.SUCCEEDED:
        return latest
    # A failure with no model recorded (no production model then) is replaced by a real try.
    Prediction.objects.filter(image=image, model_version="", status=Prediction.Status.FAILED).delete()
    prediction = prediction_request(image=image)
    Study.objects.filter(pk=image.study_id).update(status=Study.Status.PROCESSING)
    audit_event_create(actor=actor, action=AuditAction.PREDICTION_RETRIED, obj=prediction, request=request)
    return prediction


def prediction_start(*, prediction_id: int, task_id: str = "") -> Prediction | None:
    """queued -> running, one more attempt, under the row lock; None when there is nothing
    to run.

    A prediction can get more than one message (the sweeper re-sends an overdue one; Redis
    re-delivers an unacknowledged one), so only one delivery runs it: a queued row starts;
    a running row starts again only for the same message (``task_id``) re-delivered after
    its worker died, up to ``PREDICTION_MAX_ATTEMPTS``; anything else (succeeded, failed,
    or running under another message) is a duplicate and returns None.
    """
    with transaction.atomic():
        prediction = (
            Prediction.objects.select_for_update().select_related("image__study").filter(pk=prediction_id).first()
        )
        if prediction is None:
            return None
        redelivered = (prediction.status == Prediction.Status.RUNNING and bool(task_id)
                       and prediction.task_id == task_id)
        if prediction.status != Prediction.Status.QUEUED and not redelivered:
            return None
        if redelivered and prediction.attempts >= settings.PREDICTION_MAX_ATTEMPTS:
            _fail_locked(prediction, f"its worker stopped during each of {prediction.attempts} attempts")
            return None
        prediction.status = Prediction.Status.RUNNING
        prediction.attempts += 1
        prediction.started_at = timezone.now()
        prediction.task_id = task_id
        prediction.save(update_fields=["status", "attempts", "started_at", "task_id"])
    return prediction


def prediction_defer(*, prediction_id: int, task_id: str = "") -> bool:
    """A running shadow prediction gives its turn to waiting production work: back to queued
    (the attempt it started is not counted) and sent again at low priority, so the worker
    takes the production message first. False when it is not this message's running shadow."""
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().filter(pk=prediction_id).first()
        if (prediction is None or not _is_shadow(prediction) or prediction.status != Prediction.Status.RUNNING
                or prediction.task_id != task_id):
            return False
        prediction.status = Prediction.Status.QUEUED
        prediction.attempts = max(0, prediction.attempts - 1)
        prediction.queued_at = timezone.now()
        prediction.started_at = None
        prediction.task_id = ""
        prediction.save(update_fields=["status", "attempts", "queued_at", "started_at", "task_id"])
        _send(prediction.pk, shadow=True)
    return True


def predictions_recover(*, now: Any = None) -> dict[str, list[int]]:
    """The sweeper and reaper (beat task ``clinical.predictions_recover``).

    - ``queued`` longer than ``PREDICTION_REQUEUE_AFTER_SECONDS`` since its task was sent:
      the message evidently never arrived (the broker was down at submission, or lost it);
      it is sent again. A duplicate in a long backlog is harmless: the first delivery runs
      it and the others find it no longer queued.
    - ``running`` longer than ``PREDICTION_STALE_SECONDS`` (the task's hard limit + 60 s):
      its worker is gone (a worker that lives kills the task at the hard limit and records
      the failure); re-queued while attempts < ``PREDICTION_MAX_ATTEMPTS``, else failed
      with the reason.

    Returns the ids ``{"resent": [...], "requeued": [...], "failed": [...]}``.
    """
    now = now or timezone.now()
    done: dict[str, list[int]] = {"resent": [], "requeued": [], "failed": []}
    for pk in _overdue(now).values_list("pk", flat=True):
        with transaction.atomic():
            was = Prediction.objects.filter(pk=pk).values_list("status", flat=True).first()
            prediction = _requeue_if_stuck(pk, now=now)
            if prediction is None:
                continue
            if prediction.status == Prediction.Status.FAILED:
                done["failed"].append(pk)
            else:
                done["resent" if was == Prediction.Status.QUEUED else "requeued"].append(pk)
    if any(done.values()):
        log.warning("predictions recovered: %s", done)
    return done


def _overdue(now: Any) -> Any:
    queued_cutoff, running_cutoff = prediction_cutoffs(now)
    queued = Q(status=Prediction.Status.QUEUED) & (
        Q(queued_at__lt=queued_cutoff) | Q(queued_at__isnull=True, created_at__lt=queued_cutoff))
    running = Q(status=Prediction.Status.RUNNING) & (
        Q(started_at__lt=running_cutoff) | Q(started_at__isnull=True, created_at__lt=running_cutoff))
    return Prediction.objects.filter(queued | running).order_by("pk")


def _requeue_if_stuck(prediction_id: int, *, now: Any = None, fresh_round: bool = False) -> Prediction | None:
    """Under the row lock: re-send an overdue queued prediction, re-queue (or fail, after
    the last attempt) an overdue running one; None when it is not stuck (any more).
    ``fresh_round`` (a reader's Retry) resets the attempts instead of failing."""
    now = now or timezone.now()
    with transaction.atomic():
        prediction = _overdue(now).select_for_update().filter(pk=prediction_id).first()
        if prediction is None:
            return None
        if (prediction.status == Prediction.Status.RUNNING and not fresh_round
                and prediction.attempts >= settings.PREDICTION_MAX_ATTEMPTS):
            _fail_locked(prediction, (
                f"no result {settings.PREDICTION_STALE_SECONDS} s after attempt {prediction.attempts} "
                f"of {settings.PREDICTION_MAX_ATTEMPTS} started: its worker stopped"))
            return prediction
        prediction.status = Prediction.Status.QUEUED
        prediction.queued_at = now
        prediction.task_id = ""
        if fresh_round:
            prediction.attempts = 0
        prediction.save(update_fields=["status", "queued_at", "task_id", "attempts"])
        _send(prediction.pk, shadow=_is_shadow(prediction))
    return prediction


def _fail_locked(prediction: Prediction, reason: str) -> None:
    prediction.status = Prediction.Status.FAILED
    prediction.failure_reason = reason[:2000]
    prediction.completed_at = timezone.now()
    prediction.save(update_fields=["status", "failure_reason", "completed_at"])
    if not _is_shadow(prediction):  # a shadow failure never touches the study
        _study_refresh(prediction.image.study)
    _count_failure(prediction)


def _count_failure(prediction: Prediction) -> None:
    version, arm = prediction.model_version, prediction.arm
    transaction.on_commit(lambda: metrics.prediction_failed(model_version=version, arm=arm))


def prediction_store_result(*, prediction_id: int, output: TriageOutput) -> Prediction:
    """Save artefacts first (files), then the row in one transaction."""
    saved = []
    try:
        heat_png = heat_npy = ""
        if output.heatmap_png:
            heat_png = default_storage.save(f"heatmaps/{prediction_id}.png", ContentFile(output.heatmap_png))
            saved.append(heat_png)
        if output.heatmap_npy:
            heat_npy = default_storage.save(f"heatmaps/{prediction_id}.npy", ContentFile(output.heatmap_npy))
            saved.append(heat_npy)
        with transaction.atomic():
            prediction = Prediction.objects.select_for_update().select_related("image__study").get(
                pk=prediction_id
            )
            if prediction.status == Prediction.Status.SUCCEEDED:  # a duplicate delivery won
                raise _AlreadyDone(prediction)
            prediction.probabilities = output.probabilities
            prediction.top_class = output.top_class
            prediction.confidence = output.confidence
            study = prediction.image.study
            prediction.out_of_scope = output.out_of_scope or bool(study.scope_warning)
            prediction.ood_score = output.ood_score
            # A header that puts the study outside the scope is the reason a reader needs.
            prediction.ood_reason = (study.scope_warning or output.ood_reason or "")[:300]
            prediction.ood_percentile = output.ood_percentile
            prediction.ood_threshold_percentile = output.ood_threshold_percentile
            prediction.scope = output.scope
            prediction.scope_source = output.scope_source
            prediction.scope_probability = output.scope_probability
            prediction.latency_ms = output.latency_ms
            prediction.heatmap_png = heat_png
            prediction.heatmap_array = heat_npy
            prediction.status = Prediction.Status.SUCCEEDED
            prediction.failure_reason = ""
            prediction.completed_at = timezone.now()
            prediction.save()
            transaction.on_commit(lambda: metrics.prediction_succeeded(
                model_version=prediction.model_version, arm=prediction.arm, predicted_class=output.top_class,
                confidence=output.confidence, out_of_scope=prediction.out_of_scope, latency_ms=output.latency_ms))
            if _is_shadow(prediction):
                # Invisible: the study, its worklist place and its integrations stay as
                # production left them; a verdict already saved is scored for the shadow too.
                _shadow_outcome_if_reviewed(prediction)
            else:
                _study_refresh(prediction.image.study)
                _shadow_request(prediction)
                try:  # the study's drift features (mlcore keeps them under an opaque ref)
                    drift_observation_record(ref=f"prediction:{prediction.pk}", output=output)
                except DriftError as exc:  # drift is monitoring: never a reason to lose a result
                    log.warning("prediction %s: drift features not kept: %s", prediction.pk, exc)
        return prediction
    except _AlreadyDone as done:
        for name in saved:
            default_storage.delete(name)
        return done.prediction
    except BaseException:
        for name in saved:
            default_storage.delete(name)
        raise


class _AlreadyDone(Exception):
    def __init__(self, prediction: Prediction):
        self.prediction = prediction


def prediction_mark_failed(*, prediction_id: int, reason: str) -> None:
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().select_related("image__study").get(
            pk=prediction_id
        )
        if prediction.status == Prediction.Status.SUCCEEDED:
            return
        prediction.status = Prediction.Status.FAILED
        prediction.failure_reason = reason[:2000]
        prediction.completed_at = timezone.now()
        prediction.save(update_fields=["status", "failure_reason", "completed_at"])
        if not _is_shadow(prediction):  # a shadow failure never fails the study
            _study_refresh(prediction.image.study)
        _count_failure(prediction)


def _shadow_request(served: Prediction) -> Prediction | None:
    """After ``served`` (a production or canary prediction) succeeded: queue the shadow
    candidate's prediction of the same image when routing says so (``shadow_route``), at
    low priority. Once per (image, version), so a re-delivery or a retry adds none. Its own
    savepoint, and any error only logged: shadow work never fails the study's result."""
    try:
        with transaction.atomic():
            route = shadow_route(study_uid=served.image.study.uid, served_version=served.model_version,
                                 name=served.model_name)
            if route is None:
                return None
            shadow, created = Prediction.objects.get_or_create(
                image=served.image, model_name=route.name, model_version=route.version,
                defaults={"arm": Prediction.Arm.SHADOW, "status": Prediction.Status.QUEUED,
                          "queued_at": timezone.now()},
            )
            if created:
                _send(shadow.pk, shadow=True)
            return shadow
    except Exception:
        log.exception("could not queue the shadow prediction of image %s", served.image_id)
        return None


def _shadow_outcome_if_reviewed(shadow: Prediction) -> None:
    review = shadow.image.reviews.order_by("-created_at", "-id").first()
    if review is not None:
        review_outcomes_record(review=review)


def _study_refresh(study: Study) -> None:
    """Recompute the study's triage fields and status from its images' latest predictions."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status == Study.Status.SIGNED_OFF:
        return
    fields = study_triage_fields(study)
    for key, value in fields.items():
        setattr(study, key, value)
    study.save(update_fields=list(fields))
    if fields.get("status") in (Study.Status.AWAITING_REVIEW, Study.Status.FAILED):
        transaction.on_commit(lambda: study_ready(study_id=study.pk))


def triage_refresh_for_version(*, model_name: str, model_version: str) -> int:
    """Re-rank the open studies with a prediction of this version (its operating points were
    just applied); returns how many were refreshed."""
    ids = (Study.objects.exclude(status=Study.Status.SIGNED_OFF)
           .filter(images__predictions__model_name=model_name, images__predictions__model_version=model_version)
           .values_list("pk", flat=True).distinct())
    count = 0
    for pk in list(ids):
        with transaction.atomic():
            study = Study.objects.select_for_update().get(pk=pk)
            if study.status not in (Study.Status.AWAITING_REVIEW, Study.Status.REVIEWED):
                continue
            fields = study_triage_fields(study)
            fields.pop("status", None)
            for key, value in fields.items():
                setattr(study, key, value)
            study.save(update_fields=list(fields))
            count += 1
    return count


def attribution_request(*, prediction: Prediction, method: str, actor: Any, request: Any = None,
                        target: str = "") -> Prediction:
    """Queue a captum attribution of ``target`` (a class of the prediction's scope; default:
    its top class) for ``prediction``, idempotent per (method, class):
    queued -> running -> succeeded | failed, kept in ``prediction.attributions`` under
    :func:`clinical.selectors.overlays.attribution_key`."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; accepted: {', '.join(ATTRIBUTION_METHODS)}")
    if target and target not in prediction_classes(prediction):
        raise ValueError(f"class {target!r} is not one this prediction can be explained for; accepted: "
                         f"{', '.join(prediction_classes(prediction))}")
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().get(pk=prediction.pk)
        target = target or prediction.top_class
        key = attribution_key(method, target, prediction.top_class)
        current = prediction.attributions.get(key, {})
        if current.get("status") in ("queued", "running", "succeeded"):
            return prediction
        prediction.attributions = {**prediction.attributions, key: {"status": "queued", "target": target}}
        prediction.save(update_fields=["attributions"])
        audit_event_create(actor=actor, action=AuditAction.ATTRIBUTION_REQUESTED, obj=prediction,
                           request=request, details={"method": method, "class": target})
        enqueue_on_commit(RUN_ATTRIBUTION, prediction_id=prediction.pk, method=method, target=target)
    return prediction


def attribution_start(*, prediction_id: int, method: str, target: str = "") -> Prediction | None:
    """-> running; None when this (method, class) map is already there (a duplicate delivery)."""
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().select_related("image").get(pk=prediction_id)
        target = target or prediction.top_class
        key = attribution_key(method, target, prediction.top_class)
        if prediction.attributions.get(key, {}).get("status") == "succeeded":
            return None
        prediction.attributions = {**prediction.attributions, key: {"status": "running", "target": target}}
        prediction.save(update_fields=["attributions"])
    return prediction


def attribution_store_result(*, prediction_id: int, method: str, png: bytes | None = None,
                             reason: str = "", target: str = "") -> Prediction:
    """-> succeeded with the overlay ``png`` (saved first, outside the row lock), or -> failed
    with ``reason``; kept under the (method, ``target``) key (default: the top class)."""
    top_class = Prediction.objects.values_list("top_class", flat=True).get(pk=prediction_id)
    target = target or top_class
    key = attribution_key(method, target, top_class)
    if png is not None:
        suffix = "" if key == method else f"-{target}"
        name = default_storage.save(f"attributions/{prediction_id}-{method}{suffix}.png", ContentFile(png))
        result = {"status": "succeeded", "png": name, "target": target}
    else:
        result = {"status": "failed", "reason": reason, "target": target}
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().get(pk=prediction_id)
        prediction.attributions = {**prediction.attributions, key: result}
        prediction.save(update_fields=["attributions"])
    return prediction
