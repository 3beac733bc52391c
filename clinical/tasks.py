"""Celery tasks of the clinical side: thin, idempotent, keyword-only primary keys. Each one
calls the services that move its row's state, and the inference service in between."""

from __future__ import annotations

import logging

from clinical.api.sr import client_study_sr
from clinical.selectors.predictions import production_work_waiting
from clinical.services.display import image_display_pixels
from clinical.services.predictions import (
    RUN_PREDICTION_HARD_LIMIT_S,
    RUN_PREDICTION_SOFT_LIMIT_S,
    attribution_start,
    attribution_store_result,
    prediction_defer,
    prediction_mark_failed,
    prediction_start,
    prediction_store_result,
    predictions_recover,
)
from clinical.services.result_delivery import ResultDeliveryRetryableError, result_delivery_attempt
from clinical.services.reviews import review_export_feedback
from clinical.services.rollout import rollout_guard_check
from clinical.services.webhooks import MAX_ATTEMPTS, WebhookRetryableError, webhook_attempt
from mlcore.services.inference import ModelRoute, attribution_png, triage_image
from radviewer.lib.tasks import house_task

log = logging.getLogger(__name__)


@house_task(queue="inference", soft_time_limit=RUN_PREDICTION_SOFT_LIMIT_S,
            time_limit=RUN_PREDICTION_HARD_LIMIT_S, name="clinical.run_prediction")
def run_prediction(*, prediction_id: int) -> None:
    # The message's id tells a re-delivery after a worker died from a duplicate message.
    task_id = run_prediction.request.id or ""
    prediction = prediction_start(prediction_id=prediction_id, task_id=task_id)
    if prediction is None:
        return
    shadow = prediction.arm == prediction.Arm.SHADOW

    def yields() -> bool:
        # Shadow work gives way to a reader's study queued meanwhile (checked before each
        # costly step; the one worker cannot stop a step once it runs).
        return shadow and production_work_waiting() and prediction_defer(prediction_id=prediction_id,
                                                                          task_id=task_id)

    if yields():
        return
    try:
        pixels = image_display_pixels(prediction.image)  # renders the viewer PNG on first use
        if yields():
            return
        route = ModelRoute(prediction.model_name, prediction.model_version, prediction.arm)
        study = prediction.image.study
        header_scope = study.scope if study.scope_source == study.ScopeSource.HEADER else None
        output = triage_image(route=route, pixels=pixels, scope=header_scope)
    except Exception as exc:  # recorded on the row with its reason; the reader can retry
        log.exception("prediction %s failed", prediction_id)
        prediction_mark_failed(prediction_id=prediction_id, reason=f"{type(exc).__name__}: {exc}")
        return
    prediction_store_result(prediction_id=prediction_id, output=output)


@house_task(queue="inference", soft_time_limit=300, name="clinical.run_attribution")
def run_attribution(*, prediction_id: int, method: str, target: str = "") -> None:
    """``target``: the class to explain (default, and in messages sent before per-class
    attributions: the prediction's top class within its scope)."""
    prediction = attribution_start(prediction_id=prediction_id, method=method, target=target)
    if prediction is None:
        return
    target = target or prediction.top_class
    try:
        route = ModelRoute(prediction.model_name, prediction.model_version, prediction.arm)
        png = attribution_png(route=route, pixels=image_display_pixels(prediction.image), method=method,
                              target=target or None)
        attribution_store_result(prediction_id=prediction_id, method=method, png=png, target=target)
    except Exception as exc:  # recorded per (method, class) with its reason; the reader can ask again
        log.exception("attribution %s/%s/%s failed", prediction_id, method, target)
        attribution_store_result(prediction_id=prediction_id, method=method, target=target,
                                 reason=f"{type(exc).__name__}: {exc}")


@house_task(queue="default", soft_time_limit=60, name="clinical.export_feedback",
            retry_on=(OSError,), max_retries=5)
def export_feedback(*, review_id: int) -> None:
    """Write the confirmed label of a review into the dataset store's feedback split."""
    review_export_feedback(review_id=review_id)


@house_task(queue="default", soft_time_limit=60, name="clinical.deliver_webhook",
            retry_on=(WebhookRetryableError,), max_retries=MAX_ATTEMPTS - 1)
def deliver_webhook(*, delivery_id: int) -> None:
    """One signed POST of a study's result; retried with backoff while the receiver may
    still take it (``clinical.services.webhooks``)."""
    webhook_attempt(delivery_id=delivery_id)


@house_task(queue="default", soft_time_limit=120, name="clinical.deliver_result",
            retry_on=(ResultDeliveryRetryableError,), max_retries=MAX_ATTEMPTS - 1)
def deliver_result(*, delivery_id: int) -> None:
    """One push of a study's SR to a result destination (STOW-RS or C-STORE); retried with
    the webhooks' backoff while the destination may still take it
    (``clinical.services.result_delivery``)."""
    result_delivery_attempt(delivery_id=delivery_id, render_sr=client_study_sr)


@house_task(queue="default", soft_time_limit=60, name="clinical.predictions_recover")
def recover_predictions() -> None:
    """Re-send predictions whose message never arrived and re-queue (or fail) those whose
    worker is gone (beat, every ``PREDICTION_SWEEP_SECONDS``)."""
    predictions_recover()


@house_task(queue="default", soft_time_limit=60, name="clinical.rollout_guard")
def rollout_guard() -> None:
    """The canary guard (beat, every minute): agreement, errors and latency of the canary
    against production; rolls a worse canary back (``clinical.services.rollout``)."""
    rollout_guard_check()
