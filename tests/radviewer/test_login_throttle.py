"""Sign-in throttling (issue 13 item 12): wrong passwords lock the name and the address."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from radviewer.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
RIGHT = "pw-for-tests-123"  # the fixtures' password
SMALL = {"LOGIN_FAILURE_LIMIT": 3, "LOGIN_IP_FAILURE_LIMIT": 6, "LOGIN_FAILURE_WINDOW_S": 60, "LOGIN_LOCKOUT_S": 2}


def _login(client: Client, username: str, password: str, ip: str = "127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def _signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


@override_settings(**SMALL)
def test_wrong_passwords_lock_the_account_until_the_lockout_ends(client, radiologist):
    for _ in range(2):
        assert "did not match" in _login(client, "dr_house", "wrong").content.decode()
    locked = _login(client, "dr_house", "wrong")  # the third reaches the limit
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()

    refused = _login(client, "dr_house", RIGHT)
    body = refused.content.decode()
    assert refused.status_code == 429 and int(refused["Retry-After"]) in (1, 2)
    assert "Too many failed sign-ins" in body and "Try again in" in body and "second" in body
    assert not _signed_in(client)

    event = AuditEvent.objects.get(action="account.login_locked")
    assert event.object_id == str(radiologist.pk) and event.details["locked"] == "user name"
    assert event.client_ip == "127.0.0.1"

    time.sleep(2.1)
    assert _login(client, "dr_house", RIGHT).status_code == 302
    assert _signed_in(client)


@override_settings(**SMALL)
def test_a_locked_name_is_locked_from_every_address_and_others_are_unaffected(client, radiologist, ml_admin):
    for _ in range(3):
        _login(client, "DR_House ", "wrong")  # case and spaces do not dodge the count
    assert _login(Client(), "dr_house", RIGHT, ip="10.9.9.9").status_code == 429
    # Another user from the same address signs in: the address is under its own, higher limit.
    other = Client()
    assert _login(other, ml_admin.username, RIGHT).status_code == 302 and _signed_in(other)


@override_settings(**SMALL)
def test_an_address_guessing_many_names_is_locked_and_other_addresses_are_not(client, radiologist):
    for i in range(6):
        _login(client, f"user{i}", "wrong", ip="10.0.0.66")
    refused = _login(Client(), "dr_house", RIGHT, ip="10.0.0.66")
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.content.decode()
    assert AuditEvent.objects.filter(action="account.login_locked", details__locked="address").count() == 1
    elsewhere = Client()
    assert _login(elsewhere, "dr_house", RIGHT, ip="10.0.0.7").status_code == 302 and _signed_in(elsewhere)


@override_settings(**SMALL)
def test_a_right_password_clears_the_name_count(client, radiologist):
    for _ in range(2):
        _login(client, "dr_house", "wrong")
    assert _login(client, "dr_house", RIGHT).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(2):
        _login(client, "dr_house", "wrong")
    assert _login(client, "dr_house", RIGHT).status_code == 302


@override_settings(**SMALL)
def test_the_admin_sign_in_is_throttled_too(radiologist_client, db):
    """/admin/login/ is reachable only when signed in (as a non-staff user it offers its own
    form): guessing another account's password there counts the same."""
    get_user_model().objects.create_superuser("root", "root@example.org", RIGHT)
    for _ in range(3):
        radiologist_client.post("/admin/login/", {"username": "root", "password": "wrong"})
    response = radiologist_client.post("/admin/login/", {"username": "root", "password": RIGHT})
    assert response.status_code == 200 and "Too many failed sign-ins" in response.content.decode()
    assert radiologist_client.get("/admin/").status_code == 302
