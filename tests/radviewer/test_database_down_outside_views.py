"""The database unreachable where no view is running (issue 13 item 3): a middleware reading the
session, an error page rendering its header, the token check, the sign-in form. Every such
request is a 503 with a message (JSON on the API, with ``Retry-After``), never a 500.

Two ways: a real gunicorn whose DATABASE_URL points at a closed port (the whole WSGI stack, as
deployed), and the test client with the default connection swapped for an unreachable one
(``database_down`` of test_request_guards), with Django's own exception handling (the test
client would otherwise re-raise the exception instead of answering as a server does).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from tests.radviewer.test_request_guards import database_down  # noqa: F401 - the fixture
from tests.support.brokers import free_port
from tests.support.services import port_open

REPO = Path(__file__).resolve().parents[2]
MESSAGE = b"database cannot be reached"
FAKE_SESSION = "abcdefghijklmnopqrstuvwxyz012345"


def _is_db_503(status: int, headers, body: bytes, *, api: bool) -> None:
    assert status == 503, (status, body[:500])
    assert headers["Retry-After"], headers
    assert b"Traceback" not in body
    if api:
        assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
        payload = json.loads(body)
        assert payload["code"] == "database_unavailable" and "nothing was saved" in payload["detail"]
    else:
        assert headers["Content-Type"].startswith("text/html"), headers["Content-Type"]
        assert MESSAGE in body and b"<html" in body.lower()


# ------------------------------------------------------------------ in process


@pytest.fixture
def server_like(db) -> Client:
    """A test client that answers as a server does: exceptions become Django's responses."""
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = FAKE_SESSION  # a browser that signed in before the outage
    return client


@pytest.mark.usefixtures("database_down")
@pytest.mark.parametrize(("method", "path", "api"), [
    ("GET", "/static/no-such-file.css", False),  # 404 page: its header reads the session
    ("GET", "/no-such-page/", False),  # the login-required middleware reads the session
    ("GET", "/api/no-such-endpoint/", True),  # an API 404 with a session cookie
    ("GET", "/accounts/login/", False),  # the sign-in page with a stale session
    ("POST", "/accounts/login/", False),
    ("POST", "/accounts/logout/", False),
    ("GET", "/worklist/", False),
    ("GET", "/ml/", False),
    ("GET", "/audit/", False),
    ("GET", "/admin/", False),
])
def test_pages_with_a_session_and_the_database_down_are_503(server_like, method, path, api):
    data = {"username": "dr-a", "password": "secret"} if path == "/accounts/login/" else {}
    response = server_like.generic(method, path, urllib.parse.urlencode(data),
                                   content_type="application/x-www-form-urlencoded")
    _is_db_503(response.status_code, response, response.content, api=api)


def test_handler500_answers_503_only_for_an_unreachable_database(rf):
    from django.db import OperationalError

    from radviewer import views

    for exc, status in ((RuntimeError("a bug"), 500), (OperationalError("server closed the connection"), 503)):
        try:
            raise exc
        except Exception:
            answer = views.server_error(rf.get("/worklist/"))
        assert answer.status_code == status
        assert (b"database cannot be reached" in answer.content) is (status == 503)


# ------------------------------------------------------------------ a real gunicorn


@pytest.fixture
def gunicorn_without_database(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "RADVIEWER_", "DATABASE_", "CELERY_", "MLFLOW_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "radviewer.settings.base", "RADVIEWER_VAR_DIR": str(tmp_path / "var"),
                # A PostgreSQL server that is down: nothing listens on port 1.
                "DATABASE_URL": "postgres://postgres@127.0.0.1:1/radviewer", "PYTHONUNBUFFERED": "1"})
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "radviewer.wsgi", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1", "--threads", "2", "--timeout", "30"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail(f"gunicorn did not start:\n{(tmp_path / 'gunicorn.log').read_text()[-3000:]}")
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _fetch(opener, url: str, *, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.slow
@pytest.mark.services
def test_a_real_server_with_its_database_down_answers_503_everywhere_it_needs_it(gunicorn_without_database):
    base = gunicorn_without_database
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)

    # Liveness needs no database; readiness says which check failed.
    assert _fetch(browser, f"{base}/healthz")[0] == 200
    status, _, body = _fetch(browser, f"{base}/readyz")
    assert status == 503 and json.loads(body)["checks"]["database"]["ok"] is False

    # The sign-in form renders without the database (anonymous, no session); its POST needs it.
    status, _, page = _fetch(browser, f"{base}/accounts/login/")
    assert status == 200, page[:500]
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode({"username": "dr-a", "password": "secret",
                                   "csrfmiddlewaretoken": csrf}).encode()
    status, headers, body = _fetch(browser, f"{base}/accounts/login/", data=form,
                                   headers={"Referer": f"{base}/accounts/login/"})
    _is_db_503(status, headers, body, api=False)

    # The API with a token of the issued form: looking it up is the first query.
    from clinical.services.api_clients import TOKEN_PREFIX

    token = f"{TOKEN_PREFIX}_0a1b2c3d4e5f_{'x' * 43}"
    for path in ("/api/v1/studies/", "/dicomweb/studies", "/api/v1/studies/2.25.1/fhir/"):
        status, headers, body = _fetch(browser, f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
        _is_db_503(status, headers, body, api=True)

    # A signed-in browser: a page, a static-ish file that is not there (the 404 page's header
    # reads the session), and the API with only a session cookie.
    cookie = {"Cookie": f"sessionid={FAKE_SESSION}"}
    for path, api in (("/worklist/", False), ("/static/css/no-such-file.css", False), ("/", False),
                      ("/api/no-such-endpoint/", True)):
        status, headers, body = _fetch(browser, f"{base}{path}", headers=cookie)
        _is_db_503(status, headers, body, api=api)
