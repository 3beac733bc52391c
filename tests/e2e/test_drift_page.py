"""The drift page in a real browser: reports written by the service (one quiet window, one
shifted), the plot and the latest verdicts shown, and no CSP violation (the SVG plot carries
presentation attributes only)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mlcore.services.drift import drift_check_run, drift_reference_save
from tests.mlcore.test_drift import _observe, _reference
from tests.support.browser import CHROMIUM_ARGS, log_in, watch_errors
from tests.support.browser import chromium as _chromium
from tests.support.browser import shot as _shot
from tests.support.registry import NAME, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_drift_page_shows_plot_and_alarm_without_csp_errors(live_server, registry, tmp_path, ml_admin, monkeypatch):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    registry.VAR_DIR = tmp_path / "var"
    drift_reference_save(name=NAME, version="1", reference=_reference())
    _observe("1", 40)
    drift_check_run(window=40, seed=0, permutations=99)
    _observe("1", 40, start=500, shift=2.0, seed=9)
    drift_check_run(window=40, seed=0, permutations=99)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        errors = watch_errors(page)
        log_in(page, live_server, ml_admin.username)
        page.goto(live_server.url + reverse("mlcore:drift"))
        expect(page.locator("h1")).to_contain_text("Image drift")
        expect(page.locator("figure svg")).to_be_visible()
        expect(page.locator(".drift-alarm").first).to_contain_text("alarm")
        expect(page.locator("nav.console-nav a[aria-current=page]")).to_have_text("Drift")
        _shot(page, "ml-drift")
        assert errors == []
        browser.close()
