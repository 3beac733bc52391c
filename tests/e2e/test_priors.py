"""Priors in a real browser (issue 14 item 14): the study page lists the patient's other
study; "side by side" opens both images, each drawn on its own canvas; zoom and window are
linked across the two. No CSP errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clinical.models import Study
from clinical.services.ingest import image_ingest
from tests.clinical.factories import chest_png
from tests.support.browser import browser_session, canvas_signature, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _study(radiologist, seed: int, *, days_ago: float, size: tuple[int, int]) -> Study:
    outcome = image_ingest(data=chest_png(seed=seed, size=size), filename=f"p{seed}.png", actor=radiologist)
    Study.objects.filter(pk=outcome.study.pk).update(
        patient_key="pseudo-patient-1", received_at=timezone.now() - timedelta(days=days_ago)
    )
    outcome.study.refresh_from_db()
    return outcome.study


def test_open_a_prior_side_by_side(live_server, radiologist, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect

    current = _study(radiologist, 301, days_ago=0, size=(160, 128))
    prior = _study(radiologist, 302, days_ago=200, size=(128, 160))
    with browser_session() as open_page:
        page, errors = open_page(live_server, radiologist.username)
        page.goto(live_server.url + reverse("clinical:study", args=[current.uid]))
        page.wait_for_selector("#viewer-canvas[data-ready=true]")
        card = page.locator("#priors")
        assert card.locator(".prior").count() == 1
        assert prior.received_at.strftime("%Y-%m-%d") in card.inner_text()
        # The gesture hint sits below the image, not over it.
        canvas_box = page.locator("#viewer-canvas").bounding_box()
        hint_box = page.locator(".viewer-hint").bounding_box()
        assert hint_box["y"] >= canvas_box["y"] + canvas_box["height"] - 1
        shot(page, "priors-study")
        card.locator("a.prior-compare").click()
        page.wait_for_url("**/compare/**")
        page.wait_for_selector("#compare[data-ready=true]")
        for role in ("current", "prior"):
            sel = f"#compare-canvas-{role}"
            assert page.get_attribute(sel, "data-ready") == "true"
            assert max(canvas_signature(page, sel)) > 0, f"{role} canvas is blank"
        before = {r: canvas_signature(page, f"#compare-canvas-{r}") for r in ("current", "prior")}
        # Linked: a wheel zoom over the current image zooms the prior too, a preset windows both.
        page.hover("#compare-canvas-current")
        page.mouse.wheel(0, -400)
        # expect(), not wait_for_function: its string predicates need eval, which the CSP forbids.
        expect(page.locator("#compare-canvas-prior")).not_to_have_attribute("data-zoom", "1.000")
        assert page.get_attribute("#compare-canvas-current", "data-zoom") == page.get_attribute(
            "#compare-canvas-prior", "data-zoom"
        )
        page.click("[data-compare-preset=lung]")
        expect(page.locator("#compare-canvas-prior")).to_have_attribute("data-window", "80/150")
        assert page.get_attribute("#compare-canvas-current", "data-window") == "80/150"
        after = {r: canvas_signature(page, f"#compare-canvas-{r}") for r in ("current", "prior")}
        assert all(after[r] != before[r] for r in after)
        # Unlinked: zooming the current image leaves the prior as it is; r resets both.
        page.uncheck("#compare-link")
        prior_zoom = page.get_attribute("#compare-canvas-prior", "data-zoom")
        current_zoom = page.get_attribute("#compare-canvas-current", "data-zoom")
        page.hover("#compare-canvas-current")
        page.mouse.wheel(0, -400)
        expect(page.locator("#compare-canvas-current")).not_to_have_attribute("data-zoom", current_zoom)
        assert page.get_attribute("#compare-canvas-prior", "data-zoom") == prior_zoom
        page.keyboard.press("r")
        expect(page.locator("#compare-canvas-prior")).to_have_attribute("data-window", "128/255")
        expect(page.locator("#compare-canvas-current")).to_have_attribute("data-zoom", "1.000")
        shot(page, "priors-compare")
        page.click("#back-to-study")
        page.wait_for_selector("#viewer-canvas[data-ready=true]")
        assert errors == []
