"""Role and account writes."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from radviewer.accounts.roles import ML_ADMIN, RADIOLOGIST, ROLE_MODEL_PERMISSIONS, ROLE_PERMISSIONS
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.failures import FailureLimit
from radviewer.lib.http import client_ip


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create the role groups and give each exactly its permissions: the ``accounts.Role``
    permissions of ``ROLE_PERMISSIONS`` and the model permissions of other apps in
    ``ROLE_MODEL_PERMISSIONS``. Idempotent."""
    counts = {}
    for role in ROLE_PERMISSIONS.keys() | ROLE_MODEL_PERMISSIONS.keys():
        wanted = [("accounts", c) for c in ROLE_PERMISSIONS.get(role, ())]
        wanted += [tuple(p.split(".", 1)) for p in ROLE_MODEL_PERMISSIONS.get(role, ())]
        group, _ = Group.objects.get_or_create(name=role)
        query = Q(pk__in=[])
        for app_label, codename in wanted:
            query |= Q(content_type__app_label=app_label, codename=codename)
        perms = list(Permission.objects.filter(query).select_related("content_type"))
        missing = set(wanted) - {(p.content_type.app_label, p.codename) for p in perms}
        if missing:
            names = sorted(f"{a}.{c}" for a, c in missing)
            raise RuntimeError(f"permissions missing, run migrate first: {names}")
        group.permissions.set(perms)
        counts[role] = len(perms)
    return counts


def roles_sync_after_migrate(**kwargs) -> None:
    """``post_migrate`` receiver: bring the groups up to date once every app's permissions
    exist (the signal comes once per app; earlier calls find some missing and wait)."""
    try:
        roles_sync()
    except RuntimeError:
        return


@dataclass(frozen=True)
class DemoAccounts:
    usernames: tuple[str, ...]
    password: str
    password_generated: bool


DEMO_USERS = (("radiologist", RADIOLOGIST), ("mladmin", ML_ADMIN))
DEMO_PASSWORD_FILE = "demo_password"  # noqa: S105 (a file name, not a password)


def demo_password_resolve(*, configured: str, var_dir: Path) -> tuple[str, str]:
    """``(password, where it comes from)``: ``RADVIEWER_DEMO_PASSWORD`` when set, else the
    one kept in ``var/demo_password`` (generated on the first run, mode 0600), so browser
    sessions and a newcomer's notes survive restarts."""
    if configured:
        return configured, "from RADVIEWER_DEMO_PASSWORD"
    path = Path(var_dir) / DEMO_PASSWORD_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip(), f"kept in {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password, f"generated once and kept in {path}"


@transaction.atomic
def demo_accounts_ensure(*, password: str | None) -> DemoAccounts:
    """Create or reset the demo accounts ``radiologist`` and ``mladmin``.

    Running twice is safe: existing users keep their rows and get the given password.
    """
    roles_sync()
    generated = not password
    password = password or secrets.token_urlsafe(12)
    User = get_user_model()
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"first_name": username.capitalize()}
        )
        user.set_password(password)
        user.is_staff = role == ML_ADMIN
        user.save()
        user.groups.add(Group.objects.get(name=role))
        audit_event_create(
            actor=None,
            action=AuditAction.ACCOUNT_DEMO_CREATED if created else AuditAction.ACCOUNT_DEMO_PASSWORD_RESET,
            obj=user,
            details={"role": role},
        )
    return DemoAccounts(tuple(u for u, _ in DEMO_USERS), password, generated)


# --- sign-in throttling -------------------------------------------------------------------------


def _login_limits() -> tuple[FailureLimit, FailureLimit]:
    """(per user name, per client address), read from settings at each call (tests override them)."""
    return (
        FailureLimit("login-user", settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_FAILURE_WINDOW_S,
                     settings.LOGIN_LOCKOUT_S),
        FailureLimit("login-ip", settings.LOGIN_IP_FAILURE_LIMIT, settings.LOGIN_FAILURE_WINDOW_S,
                     settings.LOGIN_LOCKOUT_S),
    )


def _username_key(username: str) -> str:
    # Case-folded and hashed: "Dr_House" and "dr_house " count together, and a name of any
    # length or character makes a valid cache key.
    return hashlib.sha256(username.strip().casefold().encode("utf-8")).hexdigest()


def login_locked_for(*, username: str, ip: str | None) -> int:
    """Seconds until sign-in for this user name from this address is allowed again (0: now)."""
    by_user, by_ip = _login_limits()
    return max(by_user.locked_for(_username_key(username)), by_ip.locked_for(ip) if ip else 0)


def login_failure_record(*, username: str, request: HttpRequest) -> int:
    """Count a wrong password for ``username`` from the request's address; when that locks
    the name or the address, audit it (``account.login_locked``). Returns the seconds the
    sign-in is now locked for (0: not locked)."""
    ip = client_ip(request)
    by_user, by_ip = _login_limits()
    locked = []
    if by_user.record_failure(_username_key(username)):
        locked.append(("user name", by_user))
    if ip and by_ip.record_failure(ip):
        locked.append(("address", by_ip))
    for scope, limit in locked:
        user = get_user_model().objects.filter(username=username).first()
        audit_event_create(
            actor=None, action=AuditAction.ACCOUNT_LOGIN_LOCKED, request=request,
            obj=user, object_type="" if user else "account", object_id="" if user else username[:128],
            actor_label=f"sign-in from {ip or 'unknown address'}",
            details={"locked": scope, "username": username[:150], "failures": limit.limit,
                     "window_s": limit.window_s, "lockout_s": limit.lockout_s},
        )
    return login_locked_for(username=username, ip=ip)


def login_success_record(*, username: str) -> None:
    """A right password clears the name's count (the address's stays: one valid account must
    not reset an address that is guessing others)."""
    _login_limits()[0].reset(_username_key(username))
