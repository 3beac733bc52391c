"""Operating points: proposed when a comparison is computed, applied on promotion to production.

``operating_points_propose`` writes the challenger's proposed per-class thresholds (one row
per urgent class that has one; the comparison result carries the classes without and why).
``operating_points_apply`` runs inside ``alias_move``'s transaction when the ML admin keeps
"apply the thresholds" ticked: the proposals made against the version leaving production get
``applied_at`` and the change record, and the record's sections list them. The worklist then
ranks that version's predictions by them (``mlcore.selectors.applied_thresholds``); the
``operating_points_applied`` signal lets the clinical side re-rank open studies at once.
"""

from __future__ import annotations

from typing import Any

import django.dispatch
from django.db import transaction
from django.utils import timezone

from mlcore.models import ChangeRecord, ModelVersion, OperatingPoint
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

# kwargs: name, version. Sent on commit after points were applied.
operating_points_applied = django.dispatch.Signal()


def operating_points_propose(*, champion: ModelVersion, challenger: ModelVersion, set_hash: str,
                             proposals: dict[str, dict[str, Any]]) -> list[OperatingPoint]:
    """Write (or refresh) the challenger's proposed points against ``champion`` on the set
    ``set_hash``; idempotent (a re-computed comparison updates its unapplied rows)."""
    rows = []
    with transaction.atomic():
        for key, p in sorted(proposals.items()):
            if p.get("threshold") is None:
                continue
            row, _ = OperatingPoint.objects.update_or_create(
                name=challenger.name, version=challenger.version, class_key=key,
                champion_version=champion.version, set_hash=set_hash, applied_at__isnull=True,
                defaults={"threshold": float(p["threshold"]), "target_sensitivity": float(p["target_sensitivity"]),
                          "sensitivity": float(p["sensitivity"][0]),
                          "specificity": p["specificity"][0]},
            )
            rows.append(row)
    return rows


def _section(point: OperatingPoint) -> dict[str, Any]:
    return {"class_key": point.class_key, "threshold": round(point.threshold, 6),
            "target_sensitivity": round(point.target_sensitivity, 6), "sensitivity": round(point.sensitivity, 6),
            "specificity": None if point.specificity is None else round(point.specificity, 6),
            "champion_version": point.champion_version, "set_hash": point.set_hash, "proposed_at":
            point.created_at.isoformat(), "operating_point": point.pk}


def operating_points_apply(*, record: ChangeRecord, actor: Any = None) -> list[OperatingPoint]:
    """Apply the newest proposal per urgent class of ``record.to_version`` made against
    ``record.from_version`` (the champion it replaces); the caller's transaction holds the
    move. Records them (or that there were none) in ``record.sections["operating_points"]``."""
    newest: dict[str, OperatingPoint] = {}
    candidates = (OperatingPoint.objects.select_for_update()
                  .filter(name=record.name, version=record.to_version, champion_version=record.from_version,
                          applied_at__isnull=True)
                  .order_by("class_key", "-created_at", "-id"))
    for point in candidates:
        newest.setdefault(point.class_key, point)
    now = timezone.now()
    points = [newest[k] for k in sorted(newest)]
    for point in points:
        point.applied_at, point.change_record = now, record
        point.save(update_fields=["applied_at", "change_record"])
    section: dict[str, Any] = {"requested": True, "applied": [_section(p) for p in points]}
    if not points:
        section["note"] = (f"no operating points of v{record.to_version} were proposed against "
                           f"v{record.from_version or '-'} (compare the two on the locked set first); "
                           "the version keeps the default urgency rule")
    record.sections = {**record.sections, "operating_points": section}
    record.save(update_fields=["sections"])
    if points:
        user = actor if getattr(actor, "is_authenticated", False) else None
        label = "" if user else str(actor or "system")
        audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_OPERATING_POINTS_APPLIED,
                           obj=record, details={"version": record.to_version, "change_record": record.pk,
                                                "thresholds": {p.class_key: p.threshold for p in points}})
        name, version = record.name, record.to_version
        transaction.on_commit(lambda: operating_points_applied.send(sender="mlcore", name=name, version=version))
    return points


def operating_points_not_applied(*, record: ChangeRecord) -> None:
    """The admin unticked "apply": say so in the record."""
    record.sections = {**record.sections, "operating_points": {
        "requested": False, "applied": [],
        "note": "the ML admin chose not to apply the proposed thresholds; earlier applied points of "
                f"v{record.to_version}, if any, stay in force"}}
    record.save(update_fields=["sections"])
