"""Role and account writes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from radviewer.accounts.roles import ML_ADMIN, RADIOLOGIST, ROLE_PERMISSIONS
from radviewer.audit.services import audit_event_create


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create the role groups and give each exactly its permissions. Idempotent."""
    counts = {}
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = list(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )
        missing = set(codenames) - {p.codename for p in perms}
        if missing:
            raise RuntimeError(f"permissions missing, run migrate first: {sorted(missing)}")
        group.permissions.set(perms)
        counts[role] = len(perms)
    return counts


@dataclass(frozen=True)
class DemoAccounts:
    usernames: tuple[str, ...]
    password: str
    password_generated: bool


DEMO_USERS = (("radiologist", RADIOLOGIST), ("mladmin", ML_ADMIN))


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
            action="account.demo_created" if created else "account.demo_password_reset",
            obj=user,
            details={"role": role},
        )
    return DemoAccounts(tuple(u for u, _ in DEMO_USERS), password, generated)
