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


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache: rate-limit counters and audit coalescing keys
    are keyed by row ids, which the test database reuses."""
    from django.core.cache import cache

    cache.clear()
    yield


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


@pytest.fixture(scope="session")
def _mlflow_test_store(django_db_blocker):
    """A fresh MLflow store for this test session with one random-weight model in production."""
    import shutil
    from pathlib import Path

    from django.conf import settings

    from tests.support.models import register_random_model

    uri = settings.MLFLOW_TRACKING_URI
    own = getattr(settings, "TEST_MLFLOW_DIR", None)
    if own is not None:  # stores of earlier sessions whose process is gone
        for old in Path(own).parent.glob("session-*"):
            pid = old.name.removeprefix("session-")
            if old != Path(own) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(old, ignore_errors=True)
    version = register_random_model(tracking_uri=uri, name=settings.MLFLOW_REGISTERED_MODEL)
    return {"tracking_uri": uri, "name": settings.MLFLOW_REGISTERED_MODEL, "version": version}


@pytest.fixture
def production_model(_mlflow_test_store, db):
    """The session's test model, mirrored into this test's database."""
    from mlcore.services.registry import registry_sync

    registry_sync(name=_mlflow_test_store["name"])
    return _mlflow_test_store


def pytest_configure(config):
    """Leftovers of earlier runs. A test run killed mid-way leaves SQLite's -wal/-shm beside
    the test database; Django recreates the database file but not those, and the next run
    fails with "disk I/O error"."""
    from pathlib import Path

    from django.conf import settings

    db = settings.DATABASES["default"]
    name = db.get("TEST", {}).get("NAME")
    if "sqlite" in db["ENGINE"] and name:
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
    # Messages an earlier session sent and no worker took (the login-box test's heartbeats,
    # a killed run's tasks) would reach this session's first worker.
    broker = getattr(settings, "TEST_FILESYSTEM_BROKER_DIR", None)
    if broker is not None and Path(broker).is_dir():
        for leftover in Path(broker).iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
