"""DRF authentication for integration clients.

``Authorization: Bearer <token>`` everywhere; on the DICOMweb endpoints also HTTP Basic with
the client name as user and the token as password, because that is what Orthanc's (and most
PACS') DICOMweb client sends. Missing credentials -> 401 with ``WWW-Authenticate``; a wrong,
malformed or revoked token -> 401 as well (never 403: the caller is not known).
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from clinical.api.clients import token_matches, token_prefix_of
from clinical.models import ApiClient

log = logging.getLogger(__name__)
REALM = "radviewer"
# Writing last_used_at on every request would serialise clients on the database (SQLite).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _authenticated(client: ApiClient | None, token: str) -> tuple[ApiClient, ApiClient]:
    if client is None or not token_matches(token, client.token_hash if client else None):
        raise exceptions.AuthenticationFailed("invalid API token", code="invalid_token")
    if not client.active:
        raise exceptions.AuthenticationFailed("this API client is revoked", code="client_revoked")
    now = timezone.now()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        ApiClient.objects.filter(pk=client.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        client.last_used_at = now
    return client, client


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request) -> tuple[ApiClient, ApiClient] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None  # another scheme: let the next class (Basic) or the 401 handle it
        token = token.strip()
        if not token or " " in token:
            raise exceptions.AuthenticationFailed(
                "malformed Authorization header; expected 'Bearer <token>'", code="invalid_token"
            )
        prefix = token_prefix_of(token)
        client = ApiClient.objects.filter(token_prefix=prefix).first() if prefix else None
        return _authenticated(client, token)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="{REALM}"'


class ClientBasicAuthentication(authentication.BaseAuthentication):
    """HTTP Basic: user = client name, password = the client's token (DICOMweb senders)."""

    def authenticate(self, request) -> tuple[ApiClient, ApiClient] | None:
        header = authentication.get_authorization_header(request)
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            user, sep, token = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("malformed Basic credentials", code="invalid_token") from None
        if not sep:
            raise exceptions.AuthenticationFailed("malformed Basic credentials", code="invalid_token")
        client = ApiClient.objects.filter(name=user).first()
        # The prefix must agree too, so a token of one client never opens another.
        if client is not None and token_prefix_of(token) != client.token_prefix:
            client = None
        return _authenticated(client, token)

    def authenticate_header(self, request) -> str:
        return f'Basic realm="{REALM}"'


class DicomWebAuthentication(BearerTokenAuthentication):
    """Bearer or Basic; the 401 challenge names both so either kind of client knows what to send."""

    def authenticate(self, request) -> tuple[ApiClient, ApiClient] | None:
        return super().authenticate(request) or ClientBasicAuthentication().authenticate(request)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="{REALM}", Basic realm="{REALM}"'


def client_of(request) -> ApiClient:
    """The authenticated client of a request that passed the permission checks."""
    client = request.auth
    if not isinstance(client, ApiClient):  # unreachable behind IsAuthenticated; fail loudly
        raise exceptions.NotAuthenticated()
    return client


__all__ = ["BearerTokenAuthentication", "ClientBasicAuthentication", "DicomWebAuthentication", "client_of"]
