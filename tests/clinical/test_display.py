"""The viewer PNG is rendered after ingest (worker or first view), never twice for one image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage

from clinical.ingest import ingest_bytes
from clinical.models import Image
from clinical.services.display import image_display_ensure, image_display_pixels
from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.study_rows import upload_png

pytestmark = pytest.mark.django_db


def _png_pixels(name: str) -> np.ndarray:
    with default_storage.open(name, "rb") as fh:
        return np.asarray(PILImage.open(io.BytesIO(fh.read())))


def test_ingest_stores_only_the_original_and_the_first_view_renders_the_png(radiologist_client):
    image = upload_png(radiologist_client, seed=3)
    assert image.display_file.name == ""  # the upload answered before any PNG was encoded
    url = reverse("clinical:image_display", args=[image.study.uid, image.pk])
    first = radiologist_client.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    image.refresh_from_db()
    name = image.display_file.name
    assert name.startswith("display/") and default_storage.exists(name)
    assert b"".join(first.streaming_content) == default_storage.open(name, "rb").read()
    radiologist_client.get(url)
    image.refresh_from_db()
    assert image.display_file.name == name  # served, not rendered again


def test_dicom_display_is_the_windowed_frame_decoded_at_ingest(db):
    data = make_cxr_dicom(rows=96, cols=80, accession="D-1", patient_id="P-D1")
    outcome = image_ingest(data=data, filename="cxr.dcm")
    expected = ingest_bytes(data, filename="x.dcm", pseudonym_key=b"k" * 32, max_bytes=10**8,
                            max_pixels=10**8).decoded.pixels
    pixels = image_display_pixels(outcome.image)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected)
    assert np.array_equal(_png_pixels(outcome.image.display_file.name), expected)


def test_the_inference_task_renders_the_display_before_classifying(production_model, radiologist_client):
    image = upload_png(radiologist_client, seed=4)
    assert image.display_file.name == ""
    run_prediction(prediction_id=image.predictions.get().pk)
    image.refresh_from_db()
    assert image.predictions.get().status == "succeeded"
    assert image.display_file.name and default_storage.exists(image.display_file.name)


def _display_files() -> set[str]:
    names: set[str] = set()
    if default_storage.exists("display"):
        for sub in default_storage.listdir("display")[0]:
            names |= {f"display/{sub}/{f}" for f in default_storage.listdir(f"display/{sub}")[1]}
    return names


def test_concurrent_renders_keep_one_file(radiologist_client):
    image = upload_png(radiologist_client, seed=5)
    before = _display_files()
    a, b = Image.objects.get(pk=image.pk), Image.objects.get(pk=image.pk)  # both see no display yet
    name_a, pixels_a = image_display_ensure(a)
    name_b, pixels_b = image_display_ensure(b)  # renders too, loses the claim, cleans up
    assert pixels_a is not None and pixels_b is None
    assert name_a == name_b == Image.objects.get(pk=image.pk).display_file.name
    assert _display_files() - before == {name_a}  # the loser's copy was deleted


def test_a_lost_display_file_is_rendered_again(radiologist_client):
    image = upload_png(radiologist_client, seed=6)
    name, _ = image_display_ensure(image)
    default_storage.delete(name)
    again, pixels = image_display_ensure(Image.objects.get(pk=image.pk))
    assert pixels is not None and default_storage.exists(again)
