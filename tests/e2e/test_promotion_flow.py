"""An ML admin promotes and rolls back in a real browser: the gate blocks, an override with a
written justification promotes, one action rolls back, and both moves are on the alias
timeline and in the audit log. Debian's chromium driven by Playwright against the live server
(no worker: alias moves are synchronous)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mlcore.models import ModelAlias
from tests.e2e.test_radiologist_flow import CHROMIUM_ARGS, _chromium, _shot
from tests.support.registry import registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_blocked_override_promote_roll_back(live_server, registry, ml_admin, monkeypatch):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM asserts below, Playwright's loop
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_server.url + reverse("accounts:login"))
        page.fill("#id_username", ml_admin.username)
        page.fill("#id_password", "pw-for-tests-123")
        page.click("button[type=submit]")

        page.goto(live_server.url + "/ml/")
        page.click("a[href='/ml/versions/2/promote']")
        page.select_option("#id_alias", "production")
        page.fill("#id_reason", "better on final_eval")
        page.click("button:has-text('Move alias')")
        expect(page.locator("[role=alert]")).to_contain_text("gate blocks")
        expect(page.locator(".gate-verdict")).to_contain_text("evaluation report on the locked set")
        _shot(page, "promotion-blocked")
        page.fill("#id_override_justification", "reader study next week; canary skipped on purpose")
        page.click("button:has-text('Move alias')")
        expect(page.locator("h1")).to_contain_text("Change record")
        expect(page.locator(".record-head")).to_contain_text("reader study next week")
        assert ModelAlias.objects.get(alias="production").model_version.version == "2"

        page.goto(live_server.url + "/ml/")
        page.fill("#rollback-reason", "readers disagree more often")
        page.click("button:has-text('Roll back')")
        expect(page.locator(".record-head")).to_contain_text("Rollback")
        assert ModelAlias.objects.get(alias="production").model_version.version == "1"

        page.goto(live_server.url + "/ml/timeline/")
        timeline = page.locator("table").last
        expect(timeline).to_contain_text("Rollback")
        expect(timeline).to_contain_text("Promotion")
        page.goto(live_server.url + "/audit/")
        for action in ("model.gate_blocked", "model.gate_overridden", "model.alias_set", "model.rolled_back"):
            expect(page.locator("body")).to_contain_text(action)
        _shot(page, "promotion-audit")
        assert errors == []
        browser.close()
