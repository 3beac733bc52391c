"""Issue #14 item 12: what a heat map explains (method, class), per-class attributions, and the
highest-attention region (unit tests of the region; view tests of the URLs)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage

from clinical.models import Image, Prediction
from clinical.selectors.overlays import attention_region, attribution_key, heatmap_method
from clinical.services.predictions import attribution_store_result
from clinical.tasks import run_attribution, run_prediction
from mlcore.ml.classes import CLASS_BY_KEY
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import upload_png

# --- the region (no database) ---------------------------------------------------------------


def _blob(shape, cy, cx, sigma, peak=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def test_region_is_the_largest_component_above_the_90th_percentile_in_image_pixels():
    heat = _blob((100, 100), 30, 70, 8) + _blob((100, 100), 80, 20, 3, peak=1.0)
    region = attention_region(heat, width=400, height=200)  # map grid stretched to the image
    x0, y0, x1, y1 = region["box"]
    # the wide blob (centre x=70, y=30 on the grid -> 280, 60 in the image), not the narrow one
    assert x0 < 280 < x1 and y0 < 60 < y1
    assert x1 <= 400 and y1 <= 200 and x0 >= 4 * 50 and y1 <= 2 * 50
    assert region["percentile"] == 90.0 and 0 < region["share"] <= 0.10
    assert region["width"] == 400 and region["height"] == 200
    # every outline point lies on the box
    pts = np.array(region["outline"]).reshape(-1, 2)
    assert pts[:, 0].min() == x0 and pts[:, 0].max() == x1 and pts[:, 1].min() == y0 and pts[:, 1].max() == y1


def test_outline_of_a_rectangle_is_four_merged_edges():
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[2:5, 3:8] = 1.0  # 15 % of the map at the maximum
    heat[0, 0] = 0.5
    region = attention_region(heat, width=10, height=10)
    assert region["box"] == [3, 2, 8, 5]
    assert sorted(region["outline"]) == sorted([[3, 2, 8, 2], [3, 5, 8, 5], [3, 2, 3, 5], [8, 2, 8, 5]])


def test_outline_follows_a_non_convex_shape():
    heat = np.zeros((6, 6), dtype=np.float32)
    heat[1:4, 1] = heat[3, 1:4] = 1.0  # an L of 5 pixels
    region = attention_region(heat, width=6, height=6, percentile=80)
    assert region["box"] == [1, 1, 4, 4]
    total = sum(abs(x1 - x0) + abs(y1 - y0) for x0, y0, x1, y1 in region["outline"])
    assert total == 12  # the L's perimeter
    assert [2, 1, 2, 3] in region["outline"]  # the inner vertical edge of the L


def test_flat_or_empty_maps_have_no_region():
    assert attention_region(np.full((8, 8), 0.3), width=8, height=8) is None
    assert attention_region(np.zeros((8, 8)), width=8, height=8) is None
    assert attention_region(np.full((8, 8), np.nan), width=8, height=8) is None


def test_attribution_key_keeps_the_top_class_under_the_bare_method():
    assert attribution_key("grad_cam", "lung-covid", "lung-covid") == "grad_cam"
    assert attribution_key("grad_cam", "", "lung-covid") == "grad_cam"
    assert attribution_key("grad_cam", "lung-opacity", "lung-covid") == "grad_cam:lung-opacity"


# --- the views ---------------------------------------------------------------------------------


@pytest.fixture
def predicted(production_model, radiologist_client) -> Image:
    image = upload_png(radiologist_client)
    run_prediction(prediction_id=image.predictions.get().pk)
    assert image.predictions.get().status == Prediction.Status.SUCCEEDED
    image.refresh_from_db()
    return image


def _other_class(prediction: Prediction) -> str:
    return prediction.sorted_probabilities()[1][0]


@pytest.mark.django_db
def test_page_says_what_the_attention_map_is_and_offers_the_scope_classes(predicted, radiologist_client):
    prediction = predicted.predictions.get()
    assert heatmap_method(prediction)["method"] == "attention_rollout"  # the test model is a ViT
    body = radiologist_client.get(reverse("clinical:study", args=[predicted.study.uid])).content.decode()
    assert 'id="overlay-legend"' in body and "legend-ramp ramp-jet" in body and 'id="overlay-region"' in body
    assert 'data-overlay-method="Attention rollout" data-overlay-class=""' in body  # not class-specific
    region_url = reverse("clinical:overlay_region", args=[predicted.study.uid, predicted.pk, "attention"])
    assert f'data-overlay-region-url="{region_url}"' in body
    assert 'id="explain-class"' in body
    options = [f'<option value="{key}"' for key, _ in prediction.sorted_probabilities()]
    positions = [body.index(o) for o in options]
    assert positions == sorted(positions) and len(options) == 5  # the chest scope, best first
    assert f'<option value="{prediction.top_class}" selected>' in body
    assert "lung-oct-cnv" not in body.split('id="explain-class"', 1)[1].split("</select>", 1)[0]
    assert "js/viewer-overlay.js" in body


@pytest.mark.django_db
def test_attribution_for_another_class_is_queued_computed_and_served_separately(
    predicted, radiologist_client, django_capture_on_commit_callbacks
):
    prediction = predicted.predictions.get()
    uid, pk = predicted.study.uid, predicted.pk
    other = _other_class(prediction)
    url = reverse("clinical:attribution", args=[uid, pk, "grad_cam"])
    with django_capture_on_commit_callbacks() as callbacks:
        queued = radiologist_client.post(f"{url}?class={other}", HTTP_HX_REQUEST="true").content.decode()
    assert len(callbacks) == 1 and "Computing Grad-CAM" in queued and f"?class={other}" in queued
    prediction.refresh_from_db()
    assert prediction.attributions == {f"grad_cam:{other}": {"status": "queued", "target": other}}
    event = AuditEvent.objects.get(action="attribution.requested")
    assert event.details == {"method": "grad_cam", "class": other}

    run_attribution(prediction_id=prediction.pk, method="grad_cam", target=other)
    prediction.refresh_from_db()
    assert prediction.attributions[f"grad_cam:{other}"]["status"] == "succeeded"
    assert "grad_cam" not in prediction.attributions  # the top class's map is another one
    ready = radiologist_client.get(url, {"class": other}, HTTP_HX_REQUEST="true").content.decode()
    assert f'data-overlay-source="grad_cam:{other}"' in ready
    assert f'data-overlay-class="{CLASS_BY_KEY[other].display_name}"' in ready
    png_url = reverse("clinical:image_attribution", args=[uid, pk, "grad_cam"])
    png = radiologist_client.get(png_url, {"class": other})
    assert png.status_code == 200
    overlay = PILImage.open(io.BytesIO(b"".join(png.streaming_content)))
    assert overlay.mode == "RGBA" and overlay.size == (predicted.width, predicted.height)
    assert radiologist_client.get(png_url).status_code == 404  # the top class: not computed yet

    # the top class (no ?class=, the old URL) is its own map, stored under the bare method
    radiologist_client.post(url, HTTP_HX_REQUEST="true")
    run_attribution(prediction_id=prediction.pk, method="grad_cam")
    prediction.refresh_from_db()
    assert prediction.attributions["grad_cam"]["target"] == prediction.top_class
    assert prediction.attributions["grad_cam"]["png"] != prediction.attributions[f"grad_cam:{other}"]["png"]
    assert radiologist_client.get(png_url).status_code == 200


@pytest.mark.django_db
def test_class_choice_partial_and_bad_classes(predicted, radiologist_client):
    prediction = predicted.predictions.get()
    uid, pk = predicted.study.uid, predicted.pk
    other = _other_class(prediction)
    block = radiologist_client.get(
        reverse("clinical:attributions", args=[uid, pk]), {"class": other}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert block.startswith('<div id="attributions"') or 'id="attributions"' in block.split(">", 1)[0]
    assert f'<option value="{other}" selected>' in block
    assert f"attributions/grad_cam/?class={other}" in block and "Compute attribution (Grad-CAM)" in block
    for bad in ("lung-oct-cnv", "no-such-class"):  # another scope's class, or none at all
        assert (
            radiologist_client.get(reverse("clinical:attributions", args=[uid, pk]), {"class": bad}).status_code == 404
        )
        assert (
            radiologist_client.post(
                reverse("clinical:attribution", args=[uid, pk, "grad_cam"]) + f"?class={bad}"
            ).status_code
            == 404
        )
    prediction.refresh_from_db()
    assert prediction.attributions == {}  # nothing lost, nothing queued
    # a failure is kept per class, with its reason, and can be asked for again
    attribution_store_result(prediction_id=prediction.pk, method="grad_cam", target=other, reason="OSError: no disk")
    failed = radiologist_client.get(
        reverse("clinical:attributions", args=[uid, pk]), {"class": other}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "failed: OSError: no disk" in failed and f"attributions/grad_cam/?class={other}" in failed
    top_block = radiologist_client.get(reverse("clinical:attributions", args=[uid, pk])).content.decode()
    assert "failed:" not in top_block


@pytest.mark.django_db
def test_region_json_of_the_attention_map_and_of_an_attribution(
    predicted, radiologist_client, client, integration_user
):
    prediction = predicted.predictions.get()
    uid, pk = predicted.study.uid, predicted.pk
    response = radiologist_client.get(reverse("clinical:overlay_region", args=[uid, pk, "attention"]))
    assert response.status_code == 200 and "private" in response["Cache-Control"]
    data = response.json()
    assert data["source"] == "attention"
    x0, y0, x1, y1 = data["region"]["box"]
    assert 0 <= x0 < x1 <= predicted.width and 0 <= y0 < y1 <= predicted.height
    assert data["region"]["outline"]
    other = _other_class(prediction)
    grad_url = reverse("clinical:overlay_region", args=[uid, pk, "grad_cam"])
    assert radiologist_client.get(grad_url, {"class": other}).status_code == 404  # not computed
    run_attribution(prediction_id=prediction.pk, method="grad_cam", target=other)
    assert radiologist_client.get(grad_url, {"class": other}).json()["source"] == "grad_cam"
    assert radiologist_client.get(reverse("clinical:overlay_region", args=[uid, pk, "lime"])).status_code == 404
    client.force_login(integration_user)  # no worklist access: 404 like the PNGs
    assert client.get(reverse("clinical:overlay_region", args=[uid, pk, "attention"])).status_code == 404
