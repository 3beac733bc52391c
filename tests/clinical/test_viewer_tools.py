"""Viewer tools' server side (issue 14 item 11): pixel spacing captured at ingest for the
measurements, shown to the page; the pixel-value probe in stored units, behind access checks."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.urls import reverse

from clinical.ingest.dicom_pixels import pixel_spacing
from clinical.services.ingest import image_ingest
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db


def _pixels(rows: int = 40, cols: int = 30) -> np.ndarray:
    return (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 3) % 4096


def _ingest(data: bytes, name: str = "x.dcm", actor=None):
    return image_ingest(data=data, filename=name, actor=actor).image


def test_pixel_spacing_is_captured_row_then_column(radiologist_client, radiologist):
    image = _ingest(make_cxr_dicom(rows=40, cols=30, extra={"PixelSpacing": [0.2, 0.3]}), actor=radiologist)
    assert (image.pixel_spacing_row, image.pixel_spacing_col, image.spacing_source) == (0.2, 0.3, "PixelSpacing")
    page = radiologist_client.get(reverse("clinical:study", args=[image.study.uid])).content.decode()
    assert 'data-spacing-row="0.2"' in page and 'data-spacing-col="0.3"' in page
    assert "spacing 0.2 × 0.3 mm" in page and "no pixel spacing" not in page
    assert reverse("clinical:image_probe", args=[image.study.uid, image.pk]) in page


def test_imager_pixel_spacing_is_the_fallback_and_said_so(radiologist):
    image = _ingest(make_cxr_dicom(rows=40, cols=30, extra={"ImagerPixelSpacing": [0.143, 0.15]}), actor=radiologist)
    assert (image.pixel_spacing_row, image.pixel_spacing_col, image.spacing_source) == (
        0.143,
        0.15,
        "ImagerPixelSpacing",
    )
    both = make_cxr_dicom(rows=40, cols=30, extra={"ImagerPixelSpacing": [0.15, 0.15], "PixelSpacing": [0.1, 0.1]})
    assert pixel_spacing(pydicom.dcmread(io.BytesIO(both))) == ((0.1, 0.1), "PixelSpacing")


def test_enhanced_objects_give_spacing_in_the_pixel_measures_group():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def group(spacing):
        measures = Dataset()
        measures.PixelSpacing = spacing
        item = Dataset()
        item.PixelMeasuresSequence = Sequence([measures])
        return item

    ds = Dataset()
    ds.SharedFunctionalGroupsSequence = Sequence([group([0.01, 0.02])])
    assert pixel_spacing(ds, 0) == ((0.01, 0.02), "PixelSpacing")
    ds.PerFrameFunctionalGroupsSequence = Sequence([group([0.03, 0.04]), group([0.05, 0.06])])
    assert pixel_spacing(ds, 1) == ((0.05, 0.06), "PixelSpacing")  # the displayed frame's own
    assert pixel_spacing(Dataset()) == (None, "")


def test_no_spacing_means_pixels_with_a_visible_warning(radiologist_client, radiologist):
    image = _ingest(make_cxr_dicom(rows=40, cols=30, extra={"PixelSpacing": [0, 0.2]}), actor=radiologist)
    assert image.pixel_spacing_row is None and image.spacing_source == ""
    page = radiologist_client.get(reverse("clinical:study", args=[image.study.uid])).content.decode()
    assert "no pixel spacing: pixels" in page and 'data-spacing-row=""' in page


def test_probe_returns_stored_and_rescaled_value(radiologist_client, radiologist):
    pixels = _pixels()
    image = _ingest(
        make_cxr_dicom(rows=40, cols=30, pixels=pixels, rescale=(2.0, -1024.0), extra={"RescaleType": "HU"}),
        actor=radiologist,
    )
    url = reverse("clinical:image_probe", args=[image.study.uid, image.pk])
    response = radiologist_client.get(url, {"x": 7, "y": 11})
    assert response.status_code == 200, response.content
    body = response.json()
    stored = float(pixels[11, 7])  # row y, column x
    assert body == {"x": 7, "y": 11, "stored": [stored], "rescaled": [stored * 2 - 1024], "units": "HU"}
    assert "private" in response["Cache-Control"]
    viewed = AuditEvent.objects.filter(action="image.viewed", object_id=str(image.pk))
    assert viewed.count() == 1 and viewed.get().details["kind"] == "probe"


@pytest.mark.parametrize("params", [{"x": 30, "y": 0}, {"x": -1, "y": 0}, {"x": "a", "y": 1}, {}])
def test_probe_refuses_bad_coordinates_with_a_reason(radiologist_client, radiologist, params):
    image = _ingest(make_cxr_dicom(rows=40, cols=30), actor=radiologist)
    response = radiologist_client.get(reverse("clinical:image_probe", args=[image.study.uid, image.pk]), params)
    assert response.status_code == 400 and response.json()["error"]


def test_probe_of_a_png_says_it_has_no_stored_units(radiologist_client, radiologist):
    image = _ingest(chest_png(seed=5), name="c.png", actor=radiologist)
    response = radiologist_client.get(
        reverse("clinical:image_probe", args=[image.study.uid, image.pk]), {"x": 1, "y": 1}
    )
    assert response.status_code == 400 and "8-bit display value" in response.json()["error"]


def test_probe_is_access_checked(client, integration_user, radiologist):
    image = _ingest(make_cxr_dicom(rows=40, cols=30), actor=radiologist)
    client.force_login(integration_user)
    url = reverse("clinical:image_probe", args=[image.study.uid, image.pk])
    assert client.get(url, {"x": 1, "y": 1}).status_code == 404
    client.logout()
    assert client.get(url, {"x": 1, "y": 1}).status_code in (302, 401, 403, 404)


@pytest.mark.django_db(transaction=True)
def test_the_migration_reads_spacing_of_images_stored_before_it(radiologist):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from clinical.models import Image

    def migrate(target: str | None = None) -> None:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("clinical", target)] if target else executor.loader.graph.leaf_nodes("clinical"))

    spaced = _ingest(make_cxr_dicom(rows=40, cols=30, extra={"ImagerPixelSpacing": [0.14, 0.15]}), actor=radiologist)
    plain = _ingest(
        make_cxr_dicom(
            rows=40, cols=30, sop_uid="1.2.826.0.1.3680043.8.498.91", study_uid="1.2.826.0.1.3680043.8.498.9"
        ),
        actor=radiologist,
    )
    try:
        migrate("0013_reading")  # the migration before 0014_viewertools
    finally:
        migrate()
    spaced = Image.objects.get(pk=spaced.pk)
    assert (spaced.pixel_spacing_row, spaced.pixel_spacing_col, spaced.spacing_source) == (
        0.14,
        0.15,
        "ImagerPixelSpacing",
    )
    assert Image.objects.get(pk=plain.pk).pixel_spacing_row is None
