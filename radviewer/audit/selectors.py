from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from django.db.models import QuerySet

from radviewer.audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    since: date | None = None
    until: date | None = None


def audit_event_list(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("actor")
    if filters.actor:
        qs = qs.filter(actor__username=filters.actor) | qs.filter(actor_label=filters.actor)
    if filters.action:
        qs = qs.filter(action__startswith=filters.action)
    if filters.object_type:
        qs = qs.filter(object_type=filters.object_type)
    if filters.object_id:
        qs = qs.filter(object_id=filters.object_id)
    if filters.since:
        qs = qs.filter(created_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__date__lte=filters.until)
    return qs.order_by("-created_at", "-id")


def audit_object_types() -> list[str]:
    return list(AuditEvent.objects.order_by().values_list("object_type", flat=True).distinct())


CSV_HEADER = ("time_utc", "actor", "action", "object_type", "object_id", "client_ip", "details", "prev_hash", "hash")
# A cell starting with one of these is a formula to a spreadsheet (CSV injection): prefix it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def audit_csv_rows(*, filters: AuditFilters) -> Iterator[tuple[str, ...]]:
    """The header, then one row per matching event, oldest first (read in chunks)."""
    yield CSV_HEADER
    qs = audit_event_list(filters=filters).order_by("created_at", "id")
    for event in qs.iterator(chunk_size=2000):
        actor = event.actor.get_username() if event.actor_id else (event.actor_label or "system")
        details = json.dumps(event.details, sort_keys=True, ensure_ascii=False, default=str)
        yield tuple(_cell(v) for v in (
            event.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), actor, event.action, event.object_type,
            event.object_id, event.client_ip, details, event.prev_hash, event.hash))
