"""Styled error pages with DEBUG off (issue 13 item 14), and one log line per 403."""

from __future__ import annotations

import io
import logging

import pytest
from django.test import Client, RequestFactory, override_settings
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db

LEAKS = ("Traceback", "URLconf", "Django tried these URL patterns", "settings.py", "DEBUG", "Resolver404")


def _styled(body: str) -> None:
    assert "css/radviewer.css" in body and "Back to the home page" in body
    for leak in LEAKS:
        assert leak not in body


def test_403_names_the_reason_without_internals(radiologist_client):
    response = radiologist_client.get("/audit/")
    body = response.content.decode()
    assert response.status_code == 403
    assert "You are not allowed to do this" in body and "Reason: requires accounts.view_audit_log" in body
    _styled(body)


def test_404_for_an_unknown_address_and_for_an_unknown_study(radiologist_client):
    response = radiologist_client.get("/no/such/page/")
    assert response.status_code == 404 and "There is no page at this address" in response.content.decode()
    _styled(response.content.decode())
    study = radiologist_client.get("/studies/2.25.999999/")
    assert study.status_code == 404 and "No such study" in study.content.decode()
    _styled(study.content.decode())


def test_400_for_a_host_not_allowed():
    response = Client(HTTP_HOST="evil.example.org").get("/accounts/login/")
    assert response.status_code == 400 and "Bad request" in response.content.decode()
    _styled(response.content.decode())


def test_500_renders_without_the_database_or_a_user(django_assert_num_queries):
    request = RequestFactory().get("/")
    with django_assert_num_queries(0):
        response = server_error(request)
    assert response.status_code == 500 and "Something went wrong" in response.content.decode()
    _styled(response.content.decode())


def _console_output_of(request_403) -> str:
    """What the configured console handlers (settings.LOGGING) print while the request runs."""
    handlers = {h for name in ("django.request", "django", "") for h in logging.getLogger(name).handlers
                if type(h) is logging.StreamHandler}  # not pytest's capture handlers
    buffer = io.StringIO()
    old = {h: h.setStream(buffer) for h in handlers}
    try:
        request_403()
    finally:
        for h, stream in old.items():
            h.setStream(stream)
    return buffer.getvalue()


@pytest.mark.parametrize("debug", [False, True])
def test_a_403_is_logged_once_without_a_traceback(radiologist_client, debug):
    with override_settings(DEBUG=debug):
        out = _console_output_of(lambda: radiologist_client.get("/audit/"))
    assert out.count("Forbidden (Permission denied): /audit/") == 1, out
    assert "requires accounts.view_audit_log" in out and "Traceback" not in out
