"""Role and account writes."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

from radviewer.accounts.roles import ML_ADMIN, RADIOLOGIST, ROLE_MODEL_PERMISSIONS, ROLE_PERMISSIONS
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create


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
