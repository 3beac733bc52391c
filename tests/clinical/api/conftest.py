"""Fixtures for the integration API: clients with tokens, and an authenticated test client."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.test import Client

from clinical.models import ApiClient
from clinical.services.api_clients import api_client_create


@dataclass
class Pacs:
    """An API client row, its token and webhook secret, and an HTTP client sending the token."""

    client: ApiClient
    token: str
    secret: str
    http: Client

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def get(self, path: str, **extra):
        return self.http.get(path, **self.auth, **extra)

    def post(self, path: str, data=None, **extra):
        return self.http.post(path, data, **self.auth, **extra)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()  # throttle counters are keyed by client id, which the test DB reuses
    yield
    cache.clear()


@pytest.fixture
def make_pacs(db):
    def make(name: str = "st-elsewhere-pacs", scopes: str = "submit,read,feedback", **kwargs) -> Pacs:
        issued = api_client_create(name=name, scopes=scopes, **kwargs)
        return Pacs(issued.client, issued.token, issued.webhook_secret, Client())

    return make


@pytest.fixture
def pacs(make_pacs) -> Pacs:
    return make_pacs()
