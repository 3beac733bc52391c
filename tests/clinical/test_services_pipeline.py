"""Ingest -> queued prediction -> task -> stored result, through the services (no HTTP)."""

import pytest
from django.core.files.storage import default_storage

from clinical.ingest import IngestError
from clinical.models import Image, Prediction, Study
from clinical.services.ingest import image_ingest
from clinical.services.predictions import prediction_retry
from clinical.tasks import run_prediction
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db


def test_png_upload_is_triaged(production_model, radiologist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = image_ingest(data=chest_png(), filename="chest.png", actor=radiologist)
    assert outcome.created and len(callbacks) == 1
    prediction = outcome.image.predictions.get()
    assert prediction.status == Prediction.Status.QUEUED
    assert prediction.model_version == production_model["version"]
    assert outcome.study.status == Study.Status.PROCESSING

    run_prediction(prediction_id=prediction.pk)
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.failure_reason
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
    assert prediction.top_class in prediction.probabilities
    assert default_storage.exists(prediction.heatmap_png.name)
    assert default_storage.exists(prediction.heatmap_array.name)
    study = Study.objects.get(pk=outcome.study.pk)
    assert study.status == Study.Status.AWAITING_REVIEW
    assert study.top_class == prediction.top_class
    assert AuditEvent.objects.filter(action="image.ingested", object_id=str(outcome.image.pk)).exists()

    # A second delivery of the same task changes nothing.
    run_prediction(prediction_id=prediction.pk)
    assert Prediction.objects.filter(image=outcome.image).count() == 1


def test_same_file_twice_links_to_existing_image(production_model, radiologist):
    first = image_ingest(data=chest_png(seed=3), filename="a.png", actor=radiologist)
    second = image_ingest(data=chest_png(seed=3), filename="copy.png", actor=radiologist)
    assert not second.created and second.image.pk == first.image.pk
    assert Image.objects.count() == 1 and Study.objects.count() == 1


def test_bad_file_leaves_nothing_behind(production_model, radiologist):
    before = set(default_storage.listdir("images")[1]) if default_storage.exists("images") else set()
    with pytest.raises(IngestError) as err:
        image_ingest(data=b"%PDF-1.7 not an image", filename="scan.png", actor=radiologist)
    assert err.value.code == "unsupported_type"
    assert Study.objects.count() == 0 and Image.objects.count() == 0
    after = set(default_storage.listdir("images")[1]) if default_storage.exists("images") else set()
    assert after == before


def test_without_production_model_prediction_fails_with_reason_and_retries(radiologist, db, settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'empty.db'}"
    outcome = image_ingest(data=chest_png(seed=5), filename="x.png", actor=radiologist)
    prediction = outcome.image.predictions.get()
    assert prediction.status == Prediction.Status.FAILED
    assert "production" in prediction.failure_reason
    assert Study.objects.get(pk=outcome.study.pk).status == Study.Status.FAILED
    # Still no model: the retry records the reason again, nothing duplicated.
    prediction_retry(image=outcome.image, actor=radiologist)
    assert outcome.image.predictions.count() == 1


def test_heatmap_keeps_image_aspect_at_bounded_size(production_model, radiologist):
    import io

    import numpy as np
    from PIL import Image as PILImage

    outcome = image_ingest(data=chest_png(size=(1000, 600), seed=11), filename="wide.png", actor=radiologist)
    prediction = outcome.image.predictions.get()
    run_prediction(prediction_id=prediction.pk)
    prediction.refresh_from_db()
    with default_storage.open(prediction.heatmap_png.name) as fh:
        png = PILImage.open(io.BytesIO(fh.read()))
    assert png.mode == "RGBA" and png.size == (256, 154)  # 1000x600 scaled to 256 on the long side
    with default_storage.open(prediction.heatmap_array.name) as fh:
        array = np.load(io.BytesIO(fh.read()))
    assert array.shape == (154, 256) and 0 <= array.min() and array.max() <= 1


def test_model_without_ood_detector_stores_no_score_not_nan(production_model, radiologist):
    # The test model has no out-of-scope detector: its score must be stored as "none", not
    # NaN (PostgreSQL keeps NaN, which no JSON response can carry).
    outcome = image_ingest(data=chest_png(seed=21), filename="n.png", actor=radiologist)
    prediction = outcome.image.predictions.get()
    run_prediction(prediction_id=prediction.pk)
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED and prediction.ood_score is None
