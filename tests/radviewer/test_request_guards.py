"""Requests the database cannot take: a NUL byte in the URL, the query string or a cookie (PostgreSQL
refuses NUL in text, SQLite would silently match nothing), answered 400 before any view runs."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import Client

from clinical.services.api_clients import api_client_create

pytestmark = pytest.mark.django_db

API_NUL_URLS = [
    "/api/v1/studies/?accession_number=%00",
    "/api/v1/studies/?study_instance_uid=a%00b",
    "/api/v1/studies/2.25.1%002/",
    "/api/v1/studies/2.25.1%002/fhir/",
    "/dicomweb/studies?AccessionNumber=%00",
    "/dicomweb/studies?StudyInstanceUID=1.2%003",
    "/dicomweb/studies?limit=1&Accession%00Number=x",
]
PAGE_NUL_URLS = [
    "/studies/2.25.1%002/",
    "/studies/2.25.1%002/status/",
    "/worklist/?q=a%00b",
]


@pytest.fixture
def pacs(db) -> Client:
    token = api_client_create(name="guard-pacs", scopes="submit,read,feedback").token
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize("url", API_NUL_URLS)
def test_nul_in_an_api_url_is_a_json_400(pacs, url):
    response = pacs.get(url)
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "invalid_characters" and "NUL" in body["detail"]


@pytest.mark.parametrize("url", PAGE_NUL_URLS)
def test_nul_in_a_page_url_is_an_html_400(radiologist_client, url):
    response = radiologist_client.get(url)
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    assert b"NUL" in response.content and b"<html" in response.content.lower()


def test_nul_in_the_session_cookie_is_an_html_400(radiologist_client):
    radiologist_client.cookies["sessionid"] = "abcdefghij\x00klmnop"
    response = radiologist_client.get("/worklist/")
    assert response.status_code == 400 and b"cookie contains a NUL" in response.content


def test_a_uid_without_nul_still_reaches_the_view(pacs, radiologist_client):
    assert pacs.get("/api/v1/studies/2.25.12/").status_code == 404
    assert pacs.get("/api/v1/studies/?accession_number=A1").status_code == 200
    assert radiologist_client.get("/studies/2.25.12/").status_code == 404


@pytest.fixture
def database_down(db):
    """The default connection swapped for a real PostgreSQL connection to a closed port
    (127.0.0.1:1): every query raises the driver's own OperationalError, as when the server is
    down, whichever database the suite runs on."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    original = connections["default"]
    unreachable = {**original.settings_dict, "ENGINE": "django.db.backends.postgresql", "NAME": "radviewer",
                   "USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1", "PORT": "1",
                   "OPTIONS": {"connect_timeout": 2}, "CONN_MAX_AGE": 0}
    connections["default"] = DatabaseWrapper(unreachable, "default")
    try:
        yield
    finally:
        connections["default"].close()
        connections["default"] = original


def test_a_login_with_the_database_down_is_a_503_page(client, database_down):
    response = client.post("/accounts/login/", {"username": "dr-a", "password": "secret"})
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html") and response["Retry-After"]
    assert b"database cannot be reached" in response.content and b"Traceback" not in response.content


def test_an_api_call_with_the_database_down_is_a_json_503(pacs, database_down):
    response = pacs.get("/api/v1/studies/")
    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["code"] == "database_unavailable"
    response = pacs.post("/api/v1/studies/x/feedback/", {"verdict": "agree"}, content_type="application/json")
    assert response.status_code == 503 and response.json()["code"] == "database_unavailable"


def test_other_errors_are_not_turned_into_503(pacs):
    # The guard answers only for an unreachable database; a 404 stays a 404.
    assert pacs.get("/api/v1/studies/nope/").status_code == 404


def test_a_signed_in_page_with_the_database_down_is_a_503_page(radiologist_client, database_down):
    response = radiologist_client.get("/worklist/")  # the session itself is in the database
    assert response.status_code == 503 and b"database cannot be reached" in response.content
