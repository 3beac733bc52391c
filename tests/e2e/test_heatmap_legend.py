"""Issue #14 item 12 in a real browser: the heat map says what it explains.

The legend under the canvas names the method and the class of the drawn overlay (the
attention map is "not class-specific"); choosing another class in the AI panel switches the
shown attribution to that class's map and the legend with it; the top-attention region
(contour or box) is drawn on the canvas. No CSP errors.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from clinical.models import Prediction
from clinical.tasks import run_attribution, run_prediction
from mlcore.ml.classes import CLASS_BY_KEY
from tests.clinical.study_rows import upload_png
from tests.support.browser import browser_session, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _checksum(page) -> int:
    """A sum over every canvas pixel: thin outlines can miss canvas_signature's 8 x 8 grid."""
    return page.evaluate(
        """() => {
        const c = document.getElementById('viewer-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0;
        for (let i = 0; i < d.length; i += 4) s = (s + d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7) % 2147483647;
        return s;
    }"""
    )


def test_heatmap_legend_class_choice_and_region(live_server, production_model, radiologist, client, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    client.force_login(radiologist)
    image = upload_png(client, seed=7)
    prediction = image.predictions.get()
    run_prediction(prediction_id=prediction.pk)
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED and prediction.heatmap_png
    top = prediction.top_class
    other = prediction.sorted_probabilities()[1][0]
    # Grad-CAM maps for the top class and for the runner-up (computed here, not by a worker)
    run_attribution(prediction_id=prediction.pk, method="grad_cam")
    run_attribution(prediction_id=prediction.pk, method="grad_cam", target=other)

    with browser_session() as open_page:
        page, errors = open_page(live_server, radiologist.username)
        page.goto(live_server.url + reverse("clinical:study", args=[image.study.uid]))
        canvas = page.locator("#viewer-canvas")
        expect(canvas).to_have_attribute("data-ready", "true")
        expect(canvas).to_have_attribute("data-overlay-source", "attention")

        # legend present: colour scale, method, and a truthful "not class-specific"
        legend = page.locator("#overlay-legend")
        expect(legend).to_be_visible()
        expect(legend.locator(".legend-ramp.ramp-jet")).to_be_visible()
        expect(legend).to_contain_text("low")
        expect(legend).to_contain_text("high attention")
        expect(page.locator("#overlay-legend-method")).to_have_text("Attention rollout")
        expect(page.locator("#overlay-legend-class")).to_have_text("attention map, not class-specific")

        # the top class's Grad-CAM: method and class in the legend
        page.click("[data-show-overlay=grad_cam]")
        expect(canvas).to_have_attribute("data-overlay-source", "grad_cam")
        expect(page.locator("#overlay-legend-method")).to_have_text("Grad-CAM")
        expect(page.locator("#overlay-legend-class")).to_have_text(f"class explained: {CLASS_BY_KEY[top].display_name}")

        # another class: the attribution block swaps, the map and the legend follow
        page.select_option("#explain-class", other)
        expect(canvas).to_have_attribute("data-overlay-source", f"grad_cam:{other}")
        expect(page.locator("#overlay-legend-class")).to_have_text(
            f"class explained: {CLASS_BY_KEY[other].display_name}"
        )
        shot(page, "heatmap-legend")

        # the top-attention region: contour, then box, both change what is drawn
        page.wait_for_timeout(200)
        plain = _checksum(page)
        page.select_option("#overlay-region", "contour")
        expect(canvas).to_have_attribute("data-region", "contour")
        contour = _checksum(page)
        assert contour != plain
        page.select_option("#overlay-region", "box")
        expect(canvas).to_have_attribute("data-region", "box")
        assert _checksum(page) not in (plain, contour)
        shot(page, "heatmap-region-box")
        # it follows zoom: still drawn after zooming in at the centre
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -400)
        expect(canvas).to_have_attribute("data-region", "box")
        # hiding the overlay hides the legend and the region
        page.keyboard.press("o")
        expect(canvas).to_have_attribute("data-overlay-visible", "false")
        expect(legend).to_be_hidden()
        expect(canvas).to_have_attribute("data-region", "")
        assert errors == []
