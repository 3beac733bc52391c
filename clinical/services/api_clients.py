"""API client writes: create (token shown once), rotate, revoke, authenticate (which
records the last use). Tokens are stored hashed.

Token form: ``rv_<prefix>_<secret>`` - the 12-hex-digit prefix is public (it names the row,
shown in the admin so an operator can tell tokens apart), the secret is 256 random bits;
the row keeps only the SHA-256 of the whole token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from clinical.models import ApiClient
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.failures import FailureLimit
from radviewer.lib.http import client_ip

TOKEN_PREFIX = "rv"  # noqa: S105 (a label, not a secret)
SCOPES: tuple[str, ...] = tuple(ApiClient.Scope.values)
# Compared against when no row matches, so a wrong prefix costs what a wrong secret costs.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()
# Writing last_used_at on every request would serialise clients on the database (SQLite).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiClientRevoked(Exception):
    """The token is right but its client is revoked."""


@dataclass(frozen=True)
class IssuedCredentials:
    """What an operator sees exactly once: the token and the webhook signing secret."""

    client: ApiClient
    token: str
    webhook_secret: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix_of(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of the token's hash with the stored one."""
    return hmac.compare_digest(token_hash(token), stored_hash or _DUMMY_HASH) and stored_hash is not None


def parse_scopes(value: str | list[str] | tuple[str, ...]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = sorted({s.strip() for s in items if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValidationError(
            {"scopes": f"unknown or no scopes {unknown or '(none)'}; accepted: {', '.join(SCOPES)}"}
        )
    return scopes


def _new_token() -> tuple[str, str]:
    prefix = secrets.token_hex(6)
    return prefix, f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


@transaction.atomic
def api_client_create(
    *,
    name: str,
    scopes: str | list[str],
    rate_limit_per_minute: int = 600,
    allow_private_callbacks: bool = False,
    allowed_callback_hosts: list[str] | None = None,
    default_callback_url: str = "",
    actor: Any = None,
) -> IssuedCredentials:
    """Create a client and return its token and webhook secret (never retrievable again)."""
    prefix, token = _new_token()
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        name=name.strip(),
        token_prefix=prefix,
        token_hash=token_hash(token),
        webhook_secret=secret,
        scopes=parse_scopes(scopes),
        rate_limit_per_minute=rate_limit_per_minute,
        allow_private_callbacks=allow_private_callbacks,
        allowed_callback_hosts=[h.strip().lower() for h in allowed_callback_hosts or [] if h.strip()],
        default_callback_url=default_callback_url,
    )
    client.full_clean()
    client.save()
    audit_event_create(
        actor=actor, action=AuditAction.API_CLIENT_CREATED, obj=client,
        details={"name": client.name, "scopes": client.scopes, "token_prefix": prefix,
                 "rate_limit_per_minute": rate_limit_per_minute,
                 "allow_private_callbacks": allow_private_callbacks},
    )
    return IssuedCredentials(client, token, secret)


@transaction.atomic
def api_client_rotate_token(*, client: ApiClient, actor: Any = None) -> IssuedCredentials:
    """A new token (the old one stops working at once); the webhook secret rotates with it."""
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    prefix, token = _new_token()
    client.token_prefix, client.token_hash = prefix, token_hash(token)
    client.webhook_secret = secrets.token_urlsafe(32)
    client.save(update_fields=["token_prefix", "token_hash", "webhook_secret"])
    audit_event_create(actor=actor, action=AuditAction.API_CLIENT_TOKEN_ROTATED, obj=client,
                       details={"name": client.name, "token_prefix": prefix})
    return IssuedCredentials(client, token, client.webhook_secret)


@transaction.atomic
def api_client_revoke(*, client: ApiClient, actor: Any = None) -> ApiClient:
    """Deactivate: every request with its token gets 401 from now on. The row stays (audit)."""
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    if not client.active:
        return client
    client.active = False
    client.revoked_at = timezone.now()
    client.save(update_fields=["active", "revoked_at"])
    audit_event_create(actor=actor, action=AuditAction.API_CLIENT_REVOKED, obj=client, details={"name": client.name})
    return client


def api_client_authenticate(*, token: str, name: str | None = None) -> ApiClient | None:
    """The client ``token`` belongs to, None for an unknown or wrong token, ``ApiClientRevoked``
    for a revoked client's. With ``name`` (HTTP Basic) the client is the one of that name and
    the token's prefix must be its own, so a token of one client never opens another. Records
    the use in ``last_used_at`` (to the minute)."""
    prefix = token_prefix_of(token)
    if name is None:
        client = ApiClient.objects.filter(token_prefix=prefix).first() if prefix else None
    else:
        client = ApiClient.objects.filter(name=name).first()
        if client is not None and prefix != client.token_prefix:
            client = None
    if not token_matches(token, client.token_hash if client else None) or client is None:
        return None
    if not client.active:
        raise ApiClientRevoked(client.name)
    now = timezone.now()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        ApiClient.objects.filter(pk=client.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        client.last_used_at = now
    return client


# --- throttling of failed token authentication ----------------------------------------------


def _auth_failure_limit() -> FailureLimit:
    return FailureLimit("api-auth-ip", settings.API_AUTH_FAILURE_LIMIT, settings.API_AUTH_FAILURE_WINDOW_S,
                        settings.API_AUTH_LOCKOUT_S)


def api_auth_locked_for(*, ip: str | None) -> int:
    """Seconds until API requests from this address are accepted again (0: now)."""
    return _auth_failure_limit().locked_for(ip) if ip else 0


def api_auth_failure_record(*, request: HttpRequest, reason: str) -> int:
    """Count a failed token authentication from the request's address; when that locks the
    address, audit it (``api_client.auth_throttled``). Returns the seconds it is locked for."""
    ip = client_ip(request)
    if not ip:
        return 0
    limit = _auth_failure_limit()
    if limit.record_failure(ip):
        audit_event_create(
            actor=None, action=AuditAction.API_CLIENT_AUTH_THROTTLED, request=request,
            object_type="client_address", object_id=ip, actor_label=f"API caller at {ip}",
            details={"last_reason": reason, "path": request.path[:200], "failures": limit.limit,
                     "window_s": limit.window_s, "lockout_s": limit.lockout_s},
        )
    return limit.locked_for(ip)
