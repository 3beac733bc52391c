"""Who may call what: bearer tokens, Basic for DICOMweb, scopes, revocation, rate limits."""

from __future__ import annotations

import base64
import time

import pytest
from django.core.management import call_command
from django.test import override_settings

from clinical.models import ApiClient
from clinical.services.api_clients import api_client_revoke, token_hash
from radviewer.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

LIST = "/api/v1/studies/"


def test_missing_token_is_401_with_challenge(client):
    response = client.get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer", "Bearer rv_nope_nope", "Bearer not-a-token", "Bearer a b"])
def test_wrong_or_malformed_token_is_401(client, pacs, header):
    response = client.get(LIST, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_token_of_right_prefix_but_wrong_secret_is_401(client, pacs):
    forged = pacs.token[:-4] + ("AAAA" if not pacs.token.endswith("AAAA") else "BBBB")
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 401


def test_only_the_hash_is_stored(pacs):
    row = ApiClient.objects.get(pk=pacs.client.pk)
    assert row.token_hash == token_hash(pacs.token) and pacs.token not in str(row.__dict__)


def test_valid_token_reads_and_marks_last_use(pacs):
    response = pacs.get(LIST)
    assert response.status_code == 200, response.content
    assert response.json() == {"next": None, "previous": None, "results": []}
    assert ApiClient.objects.get(pk=pacs.client.pk).last_used_at is not None


def test_revoked_client_is_401(pacs):
    api_client_revoke(client=pacs.client)
    response = pacs.get(LIST)
    assert response.status_code == 401 and response.json()["code"] == "client_revoked"


def test_missing_scope_is_403(make_pacs):
    reader = make_pacs(name="reader-only", scopes="read")
    response = reader.post(LIST, {"files": []})
    assert response.status_code == 403
    assert "submit" in response.json()["detail"]
    assert reader.post("/api/v1/studies/x/feedback/", {}, content_type="application/json").status_code == 403


def test_rate_limit_per_client_is_429_with_retry_after(make_pacs, monkeypatch):
    from clinical.api.throttling import ApiClientRateThrottle

    clock = [6_000_000.0]  # the start of a minute; the test's requests stay inside it
    monkeypatch.setattr(ApiClientRateThrottle, "timer", staticmethod(lambda: clock[0]))
    slow = make_pacs(name="slow", rate_limit_per_minute=2)
    other = make_pacs(name="other", rate_limit_per_minute=2)
    assert [slow.get(LIST).status_code for _ in range(3)] == [200, 200, 429]
    limited = slow.get(LIST)
    assert limited.status_code == 429 and int(limited["Retry-After"]) == 60
    assert other.get(LIST).status_code == 200  # counted per client
    clock[0] += 45
    assert int(slow.get(LIST)["Retry-After"]) == 15
    clock[0] += 15  # the next minute: a fresh allowance
    assert [slow.get(LIST).status_code for _ in range(3)] == [200, 200, 429]


def test_basic_auth_with_client_name_opens_dicomweb_but_not_rest(client, pacs, make_pacs):
    creds = base64.b64encode(f"{pacs.client.name}:{pacs.token}".encode()).decode()
    assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Basic {creds}").status_code == 200
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Basic {creds}").status_code == 401
    intruder = make_pacs(name="intruder")
    wrong = base64.b64encode(f"{intruder.client.name}:{pacs.token}".encode()).decode()
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Basic {wrong}")
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"] and "Bearer" in response["WWW-Authenticate"]


def test_create_api_client_command_prints_token_once(capsys):
    call_command("create_api_client", "--name", "ris-1", "--scopes", "read,feedback", "--rate-limit", "30")
    out = capsys.readouterr().out
    token = next(line.split()[-1] for line in out.splitlines() if "token:" in line)
    row = ApiClient.objects.get(name="ris-1")
    assert row.scopes == ["feedback", "read"] and row.rate_limit_per_minute == 30
    assert row.token_hash == token_hash(token)


def test_create_api_client_command_refuses_unknown_scope():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="accepted: submit, read, feedback"):
        call_command("create_api_client", "--name", "ris-2", "--scopes", "read,admin")


@override_settings(API_AUTH_FAILURE_LIMIT=5, API_AUTH_FAILURE_WINDOW_S=60, API_AUTH_LOCKOUT_S=2)
def test_failed_tokens_lock_the_address_with_429_then_it_recovers(client, pacs):
    """Issue 13 item 12: 30 wrong bearer tokens used to get 30 x 401 and never a 429."""
    for _ in range(4):
        assert client.get(LIST, HTTP_AUTHORIZATION="Bearer rv_nope_nope").status_code == 401
    assert client.get(LIST, HTTP_AUTHORIZATION="Bearer rv_nope_nope").status_code == 429

    refused = pacs.get(LIST)  # the right token, from the locked address
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "throttled" and "failed authentications" in body["detail"]
    assert body["retry_after"] in (1, 2) and refused["Retry-After"] in ("1", "2")
    # Basic on DICOMweb counts against the same address.
    basic = base64.b64encode(f"{pacs.client.name}:{pacs.token}".encode()).decode()
    assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 429

    # Another address is unaffected.
    assert pacs.get(LIST, REMOTE_ADDR="10.1.2.3").status_code == 200
    event = AuditEvent.objects.get(action="api_client.auth_throttled")
    assert event.object_id == "127.0.0.1" and event.details["last_reason"] == "invalid_token"

    time.sleep(2.1)
    assert pacs.get(LIST).status_code == 200
