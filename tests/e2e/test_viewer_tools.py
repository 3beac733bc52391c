"""Viewer layout and tools in a real browser (issue 14 items 10 and 11): the study page fits
one screen at 1440x900 and 1920x1080; length in mm from Pixel Spacing, angle, invert, rotate,
flip, keyboard zoom/pan/window, magnifier, the stored-value probe; no CSP errors."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.browser import browser_session, canvas_signature, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SIZE = 200


def _gradient() -> np.ndarray:
    """Stored value x * 16 + y at column x, row y (12 bits): the probe's answer is known."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return (x * 16 + y).astype(np.uint16)


def _study(radiologist, **extra):
    data = make_cxr_dicom(rows=SIZE, cols=SIZE, pixels=_gradient(), rescale=(1.0, -1024.0), extra=extra)
    image = image_ingest(data=data, filename="cxr.dcm", actor=radiologist).image
    run_prediction(prediction_id=image.predictions.get().pk)
    return image


def _open(open_page, live_server, radiologist, image, size):
    page, errors = open_page(live_server, radiologist.username, size)
    page.goto(live_server.url + reverse("clinical:study", args=[image.study.uid]))
    page.wait_for_selector("#viewer-canvas[data-ready=true]")
    page.wait_for_selector("#ai-panel .top-class")
    return page, errors


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) as the viewer draws it now."""
    p = page.evaluate("([x, y]) => window.RadViewerViewer.imageToScreen(x, y)", [x, y])
    box = page.locator("#viewer-canvas").bounding_box()
    return box["x"] + p["x"], box["y"] + p["y"]


def _drawn(page) -> None:
    """Wait until the viewer has drawn the last change (it redraws on the next animation frame)."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _signature(page) -> list[int]:
    _drawn(page)
    return canvas_signature(page)


def _fits(page, width: int, height: int) -> None:
    canvas = page.locator("#viewer-canvas").bounding_box()
    submit = page.locator("#review-form button[type=submit]").bounding_box()
    assert canvas["y"] + canvas["height"] <= height and canvas["height"] >= 400, canvas
    assert submit["y"] + submit["height"] <= height and submit["x"] + submit["width"] <= width, submit
    assert page.evaluate("document.scrollingElement.scrollHeight") <= height  # nothing below the fold


def test_viewer_tools(live_server, production_model, radiologist, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    image = _study(radiologist, PixelSpacing=[0.2, 0.2])
    with browser_session() as open_page:
        for size in ((1920, 1080), (1440, 900)):
            page, errors = _open(open_page, live_server, radiologist, image, size)
            _fits(page, *size)
            shot(page, f"viewer-tools-{size[0]}")
        canvas = page.locator("#viewer-canvas")
        expect(page.locator("#spacing-info")).to_have_text("spacing 0.2 × 0.2 mm")

        # Keyboard zoom, pan and window on the focused canvas.
        canvas.focus()
        scale = float(canvas.get_attribute("data-scale"))
        page.keyboard.press("+")
        _drawn(page)
        assert float(canvas.get_attribute("data-scale")) == pytest.approx(scale * 1.25, rel=1e-3)
        before = _screen(page, 0, 0)
        page.keyboard.press("ArrowRight")
        assert _screen(page, 0, 0)[0] == pytest.approx(before[0] - 40)
        window = canvas.get_attribute("data-window")
        page.keyboard.press("Shift+ArrowUp")
        _drawn(page)
        assert canvas.get_attribute("data-window") != window
        page.keyboard.press("r")
        expect(canvas).to_have_attribute("data-scale", f"{scale:.3f}")
        expect(canvas).to_have_attribute("data-window", "128/255")

        # Length: two points 100 px apart in image space at 0.2 mm per pixel.
        page.keyboard.press("l")
        expect(canvas).to_have_attribute("data-active-tool", "length")
        page.mouse.click(*_screen(page, 50, 100))
        page.mouse.click(*_screen(page, 150, 100))
        expect(page.locator("#measure-list li")).to_have_text(["Length 1: 20.0 mm"])
        # Angle: a right angle, vertex second.
        page.keyboard.press("g")
        for x, y in ((100, 40), (40, 40), (40, 140)):
            page.mouse.click(*_screen(page, x, y))
        expect(page.locator("#measure-list li").nth(1)).to_have_text("Angle 2: 90.0°")
        # Esc cancels the measurement in progress, then leaves the tool.
        page.keyboard.press("l")
        page.mouse.click(*_screen(page, 20, 20))
        page.keyboard.press("Escape")
        page.mouse.click(*_screen(page, 30, 30))
        page.mouse.click(*_screen(page, 30, 80))  # a new pair: 10.0 mm, not one from (20, 20)
        expect(page.locator("#measure-list li").nth(2)).to_have_text("Length 3: 10.0 mm")
        page.keyboard.press("Escape")
        expect(canvas).to_have_attribute("data-active-tool", "")

        # Invert changes what is drawn and back; the measurements stay.
        original = _signature(page)
        page.keyboard.press("i")
        expect(canvas).to_have_attribute("data-invert", "true")
        assert _signature(page) != original
        page.locator('[data-tool-action="invert"]').click()
        expect(canvas).to_have_attribute("data-invert", "false")
        assert _signature(page) == original

        # Rotate 90° clockwise: the image's top-left corner goes to the top-right; the
        # measurement follows (same image points, same length) and rotating back restores.
        page.keyboard.press("]")
        expect(canvas).to_have_attribute("data-rotation", "90")
        corner, far = _screen(page, 0, 0), _screen(page, SIZE, SIZE)
        assert corner[0] > far[0] and corner[1] < far[1]
        assert _signature(page) != original
        expect(page.locator("#measure-list li").first).to_have_text("Length 1: 20.0 mm")
        shot(page, "viewer-tools-rotated")
        page.locator('[data-tool-action="rotate-left"]').click()
        expect(canvas).to_have_attribute("data-rotation", "0")
        assert _signature(page) == original
        page.keyboard.press("h")
        expect(canvas).to_have_attribute("data-flip", "h")
        assert _screen(page, 0, 0)[0] > _screen(page, SIZE, 0)[0]
        page.keyboard.press("h")
        expect(canvas).to_have_attribute("data-flip", "")

        # Clear measurements.
        page.locator('[data-tool-action="clear"]').click()
        expect(page.locator("#measure-list li")).to_have_count(0)

        # Probe: stored value and rescaled value from the server.
        page.keyboard.press("p")
        page.mouse.move(*_screen(page, 30.5, 70.5))
        expect(page.locator("#probe-readout")).to_contain_text(
            f"x 30, y 70: stored {30 * 16 + 70} → {30 * 16 + 70 - 1024}"
        )

        # Magnifier: a loupe drawn around the pointer.
        cleared = _signature(page)
        page.keyboard.press("m")
        page.mouse.move(*_screen(page, 100, 100))
        expect(canvas).to_have_attribute("data-magnifier", "true")
        page.wait_for_timeout(100)
        assert _signature(page) != cleared
        shot(page, "viewer-tools-magnifier")
        page.keyboard.press("m")

        # Full screen: the viewer column fills the screen and the image is fitted to it.
        height = canvas.bounding_box()["height"]
        page.locator('[data-tool-action="fullscreen"]').click()
        page.wait_for_function(
            "document.fullscreenElement && document.fullscreenElement.contains(document.querySelector('#viewer-canvas'))"
        )
        expect(page.locator('[data-tool-action="fullscreen"]')).to_have_attribute("aria-pressed", "true")
        page.wait_for_function(
            f"document.querySelector('#viewer-canvas').getBoundingClientRect().height > {height + 50}"
        )
        _drawn(page)
        grown = canvas.bounding_box()["height"]
        assert float(canvas.get_attribute("data-scale")) == pytest.approx(grown / SIZE, abs=2e-3)  # fitted again
        shot(page, "viewer-tools-fullscreen")
        page.keyboard.press("f")
        page.wait_for_function("!document.fullscreenElement")

        # Help lists the new keys.
        page.keyboard.press("?")
        expect(page.locator("#shortcut-help")).to_contain_text("rotate 90°")
        page.keyboard.press("Escape")
        assert errors == []


def test_without_pixel_spacing_lengths_are_in_pixels_with_a_warning(
    live_server, production_model, radiologist, monkeypatch
):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    image = _study(radiologist)
    with browser_session() as open_page:
        page, errors = _open(open_page, live_server, radiologist, image, (1440, 900))
        expect(page.locator("#spacing-info")).to_have_text("no pixel spacing: pixels")
        page.locator('[data-tool="length"]').click()
        page.mouse.click(*_screen(page, 50, 100))
        page.mouse.click(*_screen(page, 150, 100))
        expect(page.locator("#measure-list li")).to_have_text(["Length 1: 100.0 px no pixel spacing: pixels"])
        assert errors == []
