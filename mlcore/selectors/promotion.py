"""Reads of the alias timeline and the change records: "what served at time t", "which
version held which alias when", the records of every move."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from mlcore.models import AliasEvent, ChangeRecord, ModelAlias

ALIASES = tuple(ModelAlias.Alias.values)


def alias_timeline(*, name: str, alias: str | None = None, limit: int | None = None) -> QuerySet[AliasEvent]:
    """Intervals newest first, each with the change record that opened it."""
    qs = AliasEvent.objects.filter(name=name).select_related("change_record", "change_record__actor")
    if alias:
        qs = qs.filter(alias=alias)
    qs = qs.order_by("-started_at", "-id")
    return qs[:limit] if limit else qs


def _held_at(name: str, at: datetime) -> QuerySet[AliasEvent]:
    return (AliasEvent.objects.filter(name=name, started_at__lte=at)
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at)))


def served_at(*, name: str, alias: str = "production", at: datetime) -> str | None:
    """The version that held ``alias`` at ``at`` (None: none held it, or before the
    timeline began). One query on the (name, alias, started_at) index."""
    version = (_held_at(name, at).filter(alias=alias).order_by("-started_at")
               .values_list("version", flat=True).first())
    return version or None


def served_at_all(*, name: str, at: datetime) -> dict[str, str | None]:
    """Every alias's holder at ``at``, in one query."""
    held: dict[str, str | None] = dict.fromkeys(ALIASES)
    for alias, version in (_held_at(name, at).order_by("started_at").values_list("alias", "version")):
        held[alias] = version or None
    return held


def production_rollback_target(*, name: str) -> str | None:
    """The version that held ``production`` before the current holder (None: none known,
    or production is empty now)."""
    events = list(AliasEvent.objects.filter(name=name, alias=ModelAlias.Alias.PRODUCTION)
                  .order_by("-started_at", "-id").values_list("version", "ended_at")[:50])
    if not events or events[0][1] is not None or not events[0][0]:
        return None
    current = events[0][0]
    return next((v for v, _ in events[1:] if v and v != current), None)


def change_records(*, name: str | None = None, alias: str | None = None,
                   kind: str | None = None) -> QuerySet[ChangeRecord]:
    qs = ChangeRecord.objects.select_related("actor")
    if name:
        qs = qs.filter(name=name)
    if alias:
        qs = qs.filter(alias=alias)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-id")


def change_record_get(*, pk: int) -> ChangeRecord | None:
    return ChangeRecord.objects.select_related("actor").filter(pk=pk).first()
