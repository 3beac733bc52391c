"""CSP and Permissions-Policy on every response, and templates a strict CSP can render
(issue 13 item 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from clinical.models import Prediction
from clinical.tasks import run_prediction
from tests.clinical.study_rows import upload_png

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "templates").rglob("*.html"))

INLINE = {
    "inline <script> (use a static file)": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "<style> element (use static/css)": re.compile(r"<style\b", re.I),
    "style= attribute (use a class)": re.compile(r"\sstyle\s*=", re.I),
    "on*= event handler (use a static script)": re.compile(r"\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def test_the_walk_finds_the_templates():
    names = {p.relative_to(REPO / "templates").as_posix() for p in TEMPLATES}
    assert {"base.html", "clinical/study.html", "mlcore/version.html", "500.html"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.relative_to(REPO / "templates").as_posix())
def test_template_has_no_inline_script_style_or_handler(path):
    text = re.sub(r"{#.*?#}", "", path.read_text(), flags=re.S)  # comments may name what is banned
    found = [f"line {text[:m.start()].count(chr(10)) + 1}: {what}: {m.group(0)!r}"
             for what, rx in INLINE.items() for m in rx.finditer(text)]
    assert not found, "\n".join(found)


def _assert_headers(response) -> None:
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
                      "object-src 'none'", "frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'"):
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    permissions = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in permissions


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/static/css/radviewer.css", "/api/v1/studies/",
                                  "/api/docs/", "/healthz", "/studies/a%00b/", "/no/such/page/"])
def test_anonymous_responses_carry_both_headers(client, path):
    _assert_headers(client.get(path))


@pytest.mark.django_db
def test_a_radiologists_pages_carry_both_headers(radiologist_client):
    for url in ["/", reverse("clinical:worklist"), reverse("clinical:upload"), "/audit/"]:
        _assert_headers(radiologist_client.get(url))


@pytest.mark.django_db
def test_the_ml_console_pages_carry_both_headers(ml_admin_client):
    for url in [reverse("mlcore:dashboard"), reverse("mlcore:data"), reverse("audit:list")]:
        response = ml_admin_client.get(url)
        assert response.status_code == 200, url
        _assert_headers(response)


@pytest.mark.django_db
def test_the_study_page_with_probability_bars_has_no_inline_style(production_model, radiologist_client):
    image = upload_png(radiologist_client)
    run_prediction(prediction_id=image.predictions.get().pk)
    assert image.predictions.get().status == Prediction.Status.SUCCEEDED
    response = radiologist_client.get(reverse("clinical:study", args=[image.study.uid]))
    body = response.content.decode()
    _assert_headers(response)
    assert '<svg class="bar" aria-hidden="true"><rect width="' in body
    assert not re.search(r"\sstyle\s*=|<style\b", body)


@pytest.mark.django_db
def test_swagger_ui_loads_its_init_script_from_a_url():
    page = Client().get("/api/docs/")
    body = page.content.decode()
    assert page.status_code == 200 and "?script=" in body and not re.search(r"<script>|<style\b", body)
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


def test_one_htmx_config_per_page():
    """htmx reads only the first <meta name="htmx-config">: pages add keys through base.html's block."""
    offenders = [p.name for p in TEMPLATES if p.name != "base.html" and 'name="htmx-config"' in p.read_text()]
    assert offenders == []
