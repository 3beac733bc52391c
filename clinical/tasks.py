"""Celery tasks of the clinical side: thin, idempotent, keyword-only primary keys."""

from __future__ import annotations

import logging

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from clinical.models import Prediction
from radviewer.lib.tasks import house_task

log = logging.getLogger(__name__)


def _display_pixels(prediction: Prediction) -> np.ndarray:
    from clinical.services.display import image_display_pixels

    return image_display_pixels(prediction.image)  # renders the viewer PNG on first use


@house_task(queue="inference", soft_time_limit=120, name="clinical.run_prediction")
def run_prediction(*, prediction_id: int) -> None:
    from clinical.services.predictions import prediction_mark_failed, prediction_store_result
    from mlcore.services.inference import ModelRoute, triage_image

    with transaction.atomic():
        prediction = (
            Prediction.objects.select_for_update().select_related("image__study").filter(pk=prediction_id).first()
        )
        if prediction is None or prediction.status == Prediction.Status.SUCCEEDED:
            return
        prediction.status = Prediction.Status.RUNNING
        prediction.attempts += 1
        prediction.save(update_fields=["status", "attempts"])
    try:
        pixels = _display_pixels(prediction)
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
def run_attribution(*, prediction_id: int, method: str) -> None:
    from mlcore.services.inference import ModelRoute, attribution_png

    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().select_related("image").get(pk=prediction_id)
        state = prediction.attributions.get(method, {})
        if state.get("status") == "succeeded":
            return
        prediction.attributions = {**prediction.attributions, method: {"status": "running"}}
        prediction.save(update_fields=["attributions"])
    try:
        route = ModelRoute(prediction.model_name, prediction.model_version, prediction.arm)
        png = attribution_png(route=route, pixels=_display_pixels(prediction), method=method,
                              target=prediction.top_class or None)
        name = default_storage.save(f"attributions/{prediction_id}-{method}.png", ContentFile(png))
        result = {"status": "succeeded", "png": name}
    except Exception as exc:
        log.exception("attribution %s/%s failed", prediction_id, method)
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().get(pk=prediction_id)
        prediction.attributions = {**prediction.attributions, method: result}
        prediction.save(update_fields=["attributions"])


@house_task(queue="default", soft_time_limit=60, name="clinical.export_feedback",
            retry_on=(OSError,), max_retries=5)
def export_feedback(*, review_id: int) -> None:
    """Write the confirmed label of a review into the dataset store's feedback split."""
    from clinical.services.reviews import review_export_feedback

    review_export_feedback(review_id=review_id)
