from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from radviewer.accounts.roles import INTEGRATION, ML_ADMIN, RADIOLOGIST
from radviewer.accounts.services import roles_sync


def _user(username: str, role: str | None):
    roles_sync()
    user = get_user_model().objects.create_user(username=username, password="pw-for-tests-123")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def radiologist(db):
    return _user("dr_house", RADIOLOGIST)


@pytest.fixture
def ml_admin(db):
    return _user("ml_admin", ML_ADMIN)


@pytest.fixture
def integration_user(db):
    return _user("pacs_bot", INTEGRATION)


@pytest.fixture
def radiologist_client(client, radiologist):
    client.force_login(radiologist)
    return client


@pytest.fixture
def ml_admin_client(client, ml_admin):
    client.force_login(ml_admin)
    return client
