"""Shared parts of the browser tests: Debian's chromium driven by Playwright.

``chromium()`` finds the executable (a missing one fails under ``CI``, see ``require``);
``browser_page`` opens a logged-in page in a fresh context; ``watch_errors`` collects page
errors and CSP violations; ``shot`` writes a screenshot to ``var/e2e-<name>.png``.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from django.urls import reverse

from tests.support.services import require

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TEST_PASSWORD = "pw-for-tests-123"


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(Path(path).exists(), "chromium")
    require((REPO / "static" / "vendor" / "htmx.min.js").exists(), "static/vendor/htmx.min.js (make setup-dev)")
    return path


def shot(page, name: str) -> None:
    (REPO / "var").mkdir(exist_ok=True)
    # caret="initial": Playwright's default hides the caret with an injected <style>, which
    # the page's CSP blocks (and the error watch would report).
    page.screenshot(path=str(REPO / "var" / f"e2e-{name}.png"), full_page=True, caret="initial")


def watch_errors(page) -> list[str]:
    """Page errors and CSP / Permissions-Policy violations of ``page``, as they happen (a
    blocked inline script or style is no page error, only a console message)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"{msg.text} at {msg.location} on {page.url}")
            if "Content Security Policy" in msg.text or "Permissions-Policy" in msg.text
            else None
        ),
    )
    return errors


def log_in(page, live_server, username: str) -> None:
    """Sign in through the login form (test users have the password ``pw-for-tests-123``)."""
    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")


@contextmanager
def browser_session(viewport: tuple[int, int] = (1440, 900)):
    """A launched chromium and a function making logged-in pages in fresh contexts:

    with browser_session() as open_page:
        page, errors = open_page(live_server, radiologist.username)
    """
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)

        def open_page(live_server, username: str, size: tuple[int, int] = viewport):
            context = browser.new_context(viewport={"width": size[0], "height": size[1]})
            page = context.new_page()
            page.set_default_timeout(20_000)
            errors = watch_errors(page)
            log_in(page, live_server, username)
            page.wait_for_load_state()
            return page, errors

        try:
            yield open_page
        finally:
            browser.close()


def canvas_signature(page, selector: str = "#viewer-canvas") -> list[int]:
    """Grey sums of an 8 x 8 grid over a canvas (changes when what is drawn does)."""
    return page.evaluate(
        """(selector) => {
        const c = document.querySelector(selector);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let gy = 0; gy < 8; gy++) for (let gx = 0; gx < 8; gx++) {
            const x = Math.floor((gx + 0.5) * c.width / 8), y = Math.floor((gy + 0.5) * c.height / 8);
            const i = 4 * (y * c.width + x);
            out.push(d[i] + d[i + 1] + d[i + 2]);
        }
        return out;
    }""",
        selector,
    )
