"""The one way to write an audit event."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import models, router, transaction
from django.http import HttpRequest
from django.utils import timezone

from radviewer.audit.actions import AuditAction
from radviewer.audit.integrity import GENESIS_HASH, canonical_details, hash_of, lock_chain_tail
from radviewer.audit.models import AuditEvent
from radviewer.lib.http import client_ip


def audit_event_create(
    *,
    actor: Any | None,
    action: AuditAction | str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
    actor_label: str = "",
    coalesce_s: int = 0,
) -> AuditEvent | None:
    """Record that ``actor`` did ``action`` (an ``AuditAction``, e.g. ``study.viewed``) to an object.

    ``actor`` is a user or None (system); non-user actors such as API clients pass
    ``actor_label``. Runs inside the caller's transaction, so a rolled-back change leaves no
    event claiming it happened.

    The event is chained to the previous one (``prev_hash``/``hash``, radviewer.audit.integrity)
    under a lock held until the transaction ends: call this after taking any row locks
    (``select_for_update``) in the same transaction, never before, or two transactions can
    deadlock on PostgreSQL.

    ``coalesce_s`` (reads only, never changes): record the first of repeated identical events
    (same actor, action and object) in that many seconds and skip the rest, returning None;
    the recorded event says so in ``details["coalesced_window_s"]``.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    user = actor if getattr(actor, "is_authenticated", False) else None
    if coalesce_s > 0:
        who = f"user:{user.pk}" if user is not None else f"label:{actor_label}"
        key = f"audit:coalesce:{who}:{action}:{object_type}:{object_id}"
        if not cache.add(key, 1, timeout=coalesce_s):
            return None
        details = {**(details or {}), "coalesced_window_s": coalesce_s}
    # A transaction of its own when called outside one (savepoint=False: inside one, no
    # savepoint): on SQLite the insert then queues with the other writers (radviewer.lib.sqlite)
    # instead of polling for the write lock in SQLite's busy handler.
    event = AuditEvent(
        actor=user,
        actor_label=actor_label,
        action=str(action),
        object_type=object_type,
        object_id=str(object_id),
        client_ip=client_ip(request) if request is not None else None,
        details=canonical_details(details),
    )
    # The values as the database will hand them back, so the hash verifies after a round trip.
    event.client_ip = AuditEvent._meta.get_field("client_ip").get_prep_value(event.client_ip)
    using = router.db_for_write(AuditEvent)
    with transaction.atomic(using=using, savepoint=False):
        # Chain to the tail under a lock held until this transaction ends: concurrent writers
        # queue here, so each one reads the tail the previous one committed. (A caller's
        # transaction that rolls back takes its event with it; the next writer chains to the
        # last committed one.)
        lock_chain_tail(using)
        tail = AuditEvent.objects.using(using).order_by("-id").values_list("hash", flat=True).first()
        event.prev_hash = tail if tail is not None else GENESIS_HASH
        event.created_at = timezone.now()
        event.hash = hash_of(event)
        event.save(using=using, force_insert=True)
        return event
