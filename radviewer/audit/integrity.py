"""Tamper evidence and maintenance for the audit log.

Each event carries ``prev_hash`` (the hash of the event before it, by id) and ``hash``: the
SHA-256 of a canonical serialisation of its own fields and ``prev_hash``. Changing, removing
or inserting a row anywhere breaks the chain at that row, which ``manage.py verify_audit``
reports. The database triggers (migration 0003) refuse UPDATE, DELETE and TRUNCATE unless the
connection is inside :func:`audit_maintenance`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction

GENESIS_HASH = "0" * 64
HASH_VERSION = 1
# PostgreSQL: the transaction-local setting the triggers read (SQLite: the audit_maintenance table).
PG_MAINTENANCE_SETTING = "radviewer.audit_maintenance"
# pg_advisory_xact_lock key of the chain's tail (any constant unique to this use).
PG_CHAIN_LOCK_KEY = 0x61756469745F6368  # "audit_ch"


def _canonical_json_value(value: Any) -> Any:
    """JSON as it comes back from the database: PostgreSQL's jsonb may print an integral float
    (1e300) as an integer, so integral floats hash as integers on both sides."""
    if isinstance(value, dict):
        return {str(k): _canonical_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_json_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details as stored: plain JSON types (a round trip through ``json``), canonical numbers."""
    return _canonical_json_value(json.loads(json.dumps(details or {})))


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(
    *,
    prev_hash: str,
    actor_id: int | None,
    actor_label: str,
    action: str,
    object_type: str,
    object_id: str,
    created_at: datetime,
    client_ip: str | None,
    details: dict[str, Any],
) -> str:
    """SHA-256 (hex) over the event's fields and the previous event's hash, as sorted-key JSON."""
    payload = {
        "v": HASH_VERSION,
        "prev_hash": prev_hash,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "created_at": _utc_iso(created_at),
        "client_ip": client_ip or None,
        "details": _canonical_json_value(details),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def hash_of(event: Any, *, prev_hash: str | None = None) -> str:
    """The hash ``event`` (an AuditEvent or a historical model's row) should carry."""
    return event_hash(
        prev_hash=event.prev_hash if prev_hash is None else prev_hash,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        created_at=event.created_at,
        client_ip=event.client_ip,
        details=event.details,
    )


def lock_chain_tail(using: str = "default") -> None:
    """Serialise writers of the chain until the current transaction ends.

    PostgreSQL: a transaction-level advisory lock, so two writers never both read the same
    tail. SQLite: nothing to do, every transaction is ``BEGIN IMMEDIATE`` (radviewer.lib.sqlite)
    and so already holds the database's write lock when it reads the tail.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_CHAIN_LOCK_KEY])


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_id: int | None = None
    problem: str = ""
    # the last intact event: record it elsewhere to notice the tail being cut off later
    head_id: int | None = None
    head_hash: str = GENESIS_HASH

    @property
    def intact(self) -> bool:
        return self.broken_id is None


def audit_chain_verify(*, using: str = "default", chunk_size: int = 2000) -> ChainReport:
    """Walk every event in id order; stop at the first whose link or hash is wrong."""
    from radviewer.audit.models import AuditEvent

    expected_prev = GENESIS_HASH
    checked = 0
    head_id = None
    qs = AuditEvent.objects.using(using).order_by("id")
    for event in qs.iterator(chunk_size=chunk_size):
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.pk, problem=f"prev_hash is {event.prev_hash or '(empty)'!r}, "
                               f"the event before it has hash {expected_prev!r}"
                               " (an event was removed, inserted or re-chained)")
        recomputed = hash_of(event)
        if event.hash != recomputed:
            return ChainReport(checked, event.pk, problem=f"hash is {event.hash or '(empty)'!r}, its fields hash to "
                               f"{recomputed!r} (the event's fields were changed after it was written)")
        expected_prev = event.hash
        head_id = event.pk
        checked += 1
    return ChainReport(checked, head_id=head_id, head_hash=expected_prev)


@contextmanager
def audit_maintenance(*, using: str = "default") -> Iterator[None]:
    """Let this connection UPDATE, DELETE and TRUNCATE audit rows, for one transaction.

    The only legitimate users are the test suite's flush between transactional tests and an
    operator's explicit ``manage.py flush --include-audit-log`` (docs/audit.md). The switch is
    transaction-local: PostgreSQL's ``set_config(..., is_local => true)``; on SQLite a row in
    ``audit_maintenance`` inserted and removed inside the same write transaction, so no other
    connection ever sees it.
    """
    connection = connections[using]
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config(%s, 'on', true)", [PG_MAINTENANCE_SETTING])
            elif connection.vendor == "sqlite":
                cursor.execute("INSERT OR IGNORE INTO audit_maintenance (id) VALUES (1)")
        yield
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config(%s, 'off', true)", [PG_MAINTENANCE_SETTING])
            elif connection.vendor == "sqlite":
                cursor.execute("DELETE FROM audit_maintenance")
