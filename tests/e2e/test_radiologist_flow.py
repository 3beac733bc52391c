"""A radiologist's day in a real browser: log in, upload, watch triage, read, sign off.

Debian's chromium driven by Playwright against pytest-django's live server, with a real
Celery worker on the same (file) test database. Screenshots go to var/e2e-*.png.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from clinical.models import Review, Study
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png
from tests.support.browser import CHROMIUM_ARGS, log_in, watch_errors
from tests.support.browser import canvas_signature as _canvas_signature
from tests.support.browser import chromium as _chromium
from tests.support.browser import shot as _shot
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRIAGE_TIMEOUT_MS = 90_000


def test_radiologist_flow(live_server, production_model, radiologist, monkeypatch):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are
    # ordinary synchronous test code, not async views.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    env = {"RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI}
    png = chest_png(size=(320, 288), seed=41)
    dicom = make_cxr_dicom(rows=256, cols=256, window=(2048, 4096))
    with WorkerProcess(queues="inference,default", extra_env=env), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 950})
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors = watch_errors(page)
        not_found: list[str] = []
        page.on("response", lambda r: not_found.append(r.url) if r.status == 404 else None)
        log_in(page, live_server, radiologist.username)
        expect(page.locator("nav[aria-label=Main]")).to_contain_text("Worklist")

        # Upload a PNG and a DICOM in one go through the file input; each gets its own row.
        page.goto(live_server.url + reverse("clinical:upload"))
        page.set_input_files(
            "#upload-input",
            [
                {"name": "chest.png", "mimeType": "image/png", "buffer": png},
                {"name": "IMG0001.dcm", "mimeType": "application/dicom", "buffer": dicom},
            ],
        )
        expect(page.locator(".upload-result.accepted")).to_have_count(2)
        _shot(page, "upload")
        png_link = page.locator(".upload-result.accepted", has_text="chest.png").locator("a")
        dicom_link = page.locator(".upload-result.accepted", has_text="IMG0001.dcm").locator("a")
        dicom_url = dicom_link.get_attribute("href")

        # A second tab keeps the worklist open: its table refreshes itself every 10 s.
        worklist = context.new_page()
        worklist.goto(live_server.url + reverse("clinical:worklist"))
        expect(worklist.locator("tbody tr[data-uid]")).to_have_count(2)

        # The PNG study: triage result and overlay appear without a reload.
        png_link.click()
        page.wait_for_url("**/studies/**")
        study = Study.objects.get(images__original_name="chest.png")
        # A PNG has no header: the model decides its scope, and only that scope's classes show.
        expect(page.locator("#ai-panel .top-class")).to_be_visible(timeout=TRIAGE_TIMEOUT_MS)
        expect(page.locator("#ai-panel .scope-group")).to_have_count(1)
        scope = Study.objects.get(pk=study.pk).scope
        expect(page.locator("#ai-panel .probabilities li")).to_have_count({"cxr": 5, "oct": 4}[scope])
        expect(page.locator("#ai-panel .model-version")).to_have_text(production_model["version"])
        canvas = page.locator("#viewer-canvas")
        expect(canvas).to_have_attribute("data-overlay-visible", "true")
        expect(page.locator("#study-status")).to_have_text("Awaiting review")
        # The result arrived live: the overlay list holds real sources only (the canvas's own
        # data-overlay-source state attribute is not one), and nothing asked for ".../undefined".
        assert page.locator("#overlay-source option").evaluate_all("os => os.map(o => o.value)") == ["attention"]
        assert not not_found, not_found

        # Opacity: the slider changes what the canvas shows.
        page.locator("#overlay-opacity").fill("10")
        expect(canvas).to_have_attribute("data-overlay-opacity", "0.10")
        faint = _canvas_signature(page)
        page.locator("#overlay-opacity").fill("95")
        expect(canvas).to_have_attribute("data-overlay-opacity", "0.95")
        strong = _canvas_signature(page)
        assert faint != strong
        # `o` hides the overlay, and the canvas shows the image alone.
        canvas.click()
        page.keyboard.press("o")
        expect(canvas).to_have_attribute("data-overlay-visible", "false")
        assert _canvas_signature(page) != strong
        page.keyboard.press("o")
        expect(canvas).to_have_attribute("data-overlay-visible", "true")
        # Window/level by right-drag changes the window shown in the readout.
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + 200, box["y"] + 200)
        page.mouse.down(button="right")
        page.mouse.move(box["x"] + 120, box["y"] + 240, steps=4)
        page.mouse.up(button="right")
        assert canvas.get_attribute("data-window") != "128/255"
        page.click("[data-preset=lung]")
        expect(canvas).to_have_attribute("data-window", "80/150")
        _shot(page, "viewer")

        # Grad-CAM on demand: requested, computed by the worker, then shown as the overlay.
        page.click("text=Compute attribution (Grad-CAM)")
        page.click("[data-show-overlay=grad_cam]", timeout=TRIAGE_TIMEOUT_MS)
        expect(canvas).to_have_attribute("data-overlay-source", "grad_cam")
        assert page.locator("#overlay-source").input_value() == "grad_cam"

        # A correction without a class is refused with the service's reason, in place.
        page.check("input[name=verdict][value=corrected]")
        page.click("#review-form button[type=submit]")
        expect(page.locator("#review-panel .error")).to_contain_text("unknown class key")

        # Correct the label.
        page.check("input[name=verdict][value=corrected]")
        page.select_option("select[name=label]", "lung-tuberculosis")
        page.fill("#review-note", "apical cavitation")
        page.click("#review-form button[type=submit]")
        expect(page.locator(".review-history li.latest")).to_contain_text("Tuberculosis")
        expect(page.locator("#study-status")).to_have_text("Reviewed")
        assert Review.objects.get(image__study=study).label == "lung-tuberculosis"

        # The worklist tab picked the change up on its own.
        row = worklist.locator(f"tr[data-uid='{study.uid}']")
        expect(row).to_contain_text("Reviewed", timeout=25_000)

        # Sign off: the study becomes read-only, with an amendment form instead.
        page.click("#sign-off")
        expect(page.locator("#review-panel")).to_contain_text("read-only")
        expect(page.locator("#review-form button[type=submit]")).to_have_text("Save amendment")
        expect(page.locator("#study-status")).to_have_text("Signed off")
        _shot(page, "signed-off")

        # The DICOM study: `a` agrees with the AI.
        page.goto(live_server.url + dicom_url)
        # A DX of the chest: the header decides, the five chest classes show.
        expect(page.locator("#ai-panel .probabilities li")).to_have_count(5, timeout=TRIAGE_TIMEOUT_MS)
        expect(page.locator("#ai-panel .scope-group")).to_have_text("Chest X-ray classes")
        expect(page.locator("#wl-readout")).to_contain_text("DICOM")
        page.locator("#viewer-canvas").click()
        page.keyboard.press("a")
        expect(page.locator(".review-history li.latest")).to_contain_text("Agree with AI")
        page.keyboard.press("?")
        expect(page.locator("#shortcut-help")).to_be_visible()
        _shot(page, "dicom")

        worklist.goto(live_server.url + reverse("clinical:worklist") + "?done=1")
        expect(worklist.locator(f"tr[data-uid='{study.uid}']")).to_have_count(1)
        _shot(worklist, "worklist-done")
        browser.close()
    assert errors == []
    assert Study.objects.get(pk=study.pk).status == Study.Status.SIGNED_OFF
