"""DRF authentication for integration clients.

``Authorization: Bearer <token>`` everywhere; on the DICOMweb endpoints also HTTP Basic with
the client name as user and the token as password, because that is what Orthanc's (and most
PACS') DICOMweb client sends. Missing credentials -> 401 with ``WWW-Authenticate``; a wrong,
malformed or revoked token -> 401 as well (never 403: the caller is not known). Failed
authentications are counted per client address (settings ``API_AUTH_FAILURE_*``): at the
limit the address is locked and every request from it gets 429 ``throttled`` with
``Retry-After`` until the lock ends, the right token included.
"""

from __future__ import annotations

import base64
import binascii
import logging

from rest_framework import authentication, exceptions

from clinical.models import ApiClient
from clinical.services.api_clients import (
    ApiClientRevoked,
    api_auth_failure_record,
    api_auth_locked_for,
    api_client_authenticate,
)
from radviewer.lib.http import client_ip

log = logging.getLogger(__name__)
REALM = "radviewer"


def _refused(request, detail: str, code: str) -> exceptions.APIException:
    """A failed authentication: counted per client address; 429 once the address is locked."""
    seconds = api_auth_failure_record(request=request, reason=code)
    if seconds:
        return _throttled(seconds)
    return exceptions.AuthenticationFailed(detail, code=code)


def _throttled(seconds: int) -> exceptions.Throttled:
    return exceptions.Throttled(
        wait=seconds, detail="too many failed authentications from this address; every request from it "
                             "is refused until the lock ends")


def _authenticated(request, token: str, *, name: str | None = None) -> tuple[ApiClient, ApiClient]:
    # Checked before the token: while the address is locked even a right token is refused, so
    # guessing on gains nothing.
    seconds = api_auth_locked_for(ip=client_ip(request))
    if seconds:
        raise _throttled(seconds)
    try:
        client = api_client_authenticate(token=token, name=name)
    except ApiClientRevoked:
        raise _refused(request, "this API client is revoked", "client_revoked") from None
    if client is None:
        raise _refused(request, "invalid API token", "invalid_token")
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
            raise _refused(request, "malformed Authorization header; expected 'Bearer <token>'", "invalid_token")
        return _authenticated(request, token)

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
            raise _refused(request, "malformed Basic credentials", "invalid_token") from None
        if not sep:
            raise _refused(request, "malformed Basic credentials", "invalid_token")
        return _authenticated(request, token, name=user)

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
