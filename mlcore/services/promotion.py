"""Gated alias moves, rollback and alias removal, each leaving a change record, an alias
timeline interval and an audit row (DESIGN.md section 7).

Every move runs in one transaction in this order: validate, lock the model's alias changes,
compare the holder the admin saw (``expected_current``) with the holder now, run the gate
(stored results only), write the timeline, the change record and the mirror, and move the
alias in MLflow last: if MLflow refuses, the transaction rolls back and nothing is half-done;
if the commit fails after MLflow moved, the next ``registry_sync`` records the move as
observed.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlcore.models import AcceptanceCriteria, AliasEvent, ChangeRecord, ModelAlias, ModelVersion
from mlcore.selectors.promotion import production_rollback_target
from mlcore.services.change_records import change_record_sections
from mlcore.services.gate import GateVerdict, gate_check
from mlcore.services.operating_points import operating_points_apply, operating_points_not_applied
from mlcore.services.registry import ALIASES, lock_model, registry_sync
from mlcore.services.rollout import rollout_alias_moved
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

REASON_REQUIRED = (ModelAlias.Alias.CANARY, ModelAlias.Alias.PRODUCTION)
REMOVABLE = (ModelAlias.Alias.CANARY, ModelAlias.Alias.CANDIDATE)


class PromotionError(ValueError):
    """A move that cannot be made as asked; the message says why, nothing was changed."""


class AliasMovedMeanwhile(PromotionError):
    """The alias no longer holds the version the admin saw: another move came first."""


class GateBlocked(PromotionError):
    """The gate's verdict fails and no override justification was given."""

    def __init__(self, verdict: GateVerdict) -> None:
        self.verdict = verdict
        failing = "; ".join(f"{c.name}: {c.value} (required {c.required})" for c in verdict.failures)
        how = ("Override only with a written justification." if verdict.overridable else
               "This cannot be overridden: " + ", ".join(c.name for c in verdict.failures if not c.overridable)
               + " never moves with a justification.")
        super().__init__(f"the promotion gate blocks v{verdict.version} -> {verdict.alias}: {failing}. {how}")


def _actor_fields(actor: Any) -> tuple[Any, str]:
    if getattr(actor, "is_authenticated", False):
        return actor, ""
    return None, str(actor or "system")


def _actor_name(actor: Any) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else str(actor or "system")


def _mlflow_holder(name: str, alias: str) -> str:
    from mlcore.ml import tracking  # MLflow (seconds to import): only when an alias moves

    tracking.configure(settings.MLFLOW_TRACKING_URI)
    return tracking.get_version_by_alias(name, alias, tracking_uri=settings.MLFLOW_TRACKING_URI) or ""


def _mirror_holder(name: str, alias: str) -> str:
    return (ModelAlias.objects.filter(name=name, alias=alias)
            .values_list("model_version__version", flat=True).first()) or ""


def _mlflow_errors() -> tuple[type[Exception], ...]:
    from mlflow.exceptions import MlflowException  # MLflow: see _mlflow_holder

    return (MlflowException,)


def _ensure_in_step(name: str, alias: str, version: str | None = None) -> None:
    """Mirror MLflow first when it knows something the mirror does not (a version just
    registered, an alias moved in MLflow directly): one registry read when all is in step."""
    try:
        stale = _mlflow_holder(name, alias) != _mirror_holder(name, alias)
        missing = version is not None and not ModelVersion.objects.filter(name=name, version=version).exists()
        if stale or missing:
            registry_sync(name=name)
    except _mlflow_errors() as exc:
        raise PromotionError(f"the MLflow registry cannot be read now: {exc}") from None


def _moved_meanwhile(name: str, alias: str, expected: str, current: str) -> AliasMovedMeanwhile:
    last = ChangeRecord.objects.filter(name=name, alias=alias).select_related("actor").first()
    who = (last.actor.get_username() if last and last.actor else last.actor_label if last else "someone")
    when = f" at {timezone.localtime(last.created_at):%Y-%m-%d %H:%M:%S %Z}" if last else ""
    return AliasMovedMeanwhile(
        f"{alias} was moved meanwhile by {who}{when}: it now holds "
        f"{'v' + current if current else 'no version'}, not {'v' + expected if expected else 'no version'} "
        "as shown to you. Reload the page and decide again."
    )


def _check_current(name: str, alias: str, expected_current: str | None) -> str:
    current = _mirror_holder(name, alias)
    if expected_current is not None and str(expected_current).strip() != current:
        raise _moved_meanwhile(name, alias, str(expected_current).strip(), current)
    return current


def _record_move(*, actor: Any, name: str, alias: str, from_version: str, to_version: str,
                 kind: str, verdict: GateVerdict | None, reason: str, override_justification: str,
                 overridden: bool) -> ChangeRecord:
    """The change record, the timeline interval and the mirror. Inside the caller's
    transaction, which then audits and calls ``_apply_in_mlflow`` last."""
    user, label = _actor_fields(actor)
    now = timezone.now()
    record = ChangeRecord.objects.create(
        name=name, alias=alias, kind=kind, from_version=from_version, to_version=to_version,
        actor=user, actor_label=label, reason=reason, gate=verdict.to_dict() if verdict else {},
        overridden=overridden, override_justification=override_justification if overridden else "",
        sections=change_record_sections(
            name=name, alias=alias, from_version=from_version, to_version=to_version, kind=kind,
            verdict=verdict, actor_label=_actor_name(actor), reason=reason,
            override_justification=override_justification if overridden else "", at=now),
    )
    AliasEvent.objects.filter(name=name, alias=alias, ended_at__isnull=True).update(ended_at=now)
    AliasEvent.objects.create(name=name, alias=alias, version=to_version, started_at=now, change_record=record)
    if to_version:
        ModelAlias.objects.update_or_create(
            name=name, alias=alias,
            defaults={"model_version": ModelVersion.objects.get(name=name, version=to_version)})
    else:
        ModelAlias.objects.filter(name=name, alias=alias).delete()
    rollout_alias_moved(name=name, alias=alias, to_version=to_version, at=now)
    return record


def _apply_in_mlflow(*, name: str, alias: str, to_version: str) -> None:
    """The registry move itself, the last step of the transaction: if MLflow refuses, the
    records above roll back with it."""
    from mlcore.ml import tracking  # MLflow: see _mlflow_holder

    if to_version:
        tracking.set_alias(name, alias, to_version)
    else:
        tracking.client(settings.MLFLOW_TRACKING_URI).delete_registered_model_alias(name, alias)


def _validate_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise PromotionError(f"unknown alias {alias!r}; accepted: {', '.join(ALIASES)}")


def alias_move(*, actor: Any, alias: str, version: str, name: str | None = None, reason: str,
               override_justification: str = "", expected_current: str | None = None,
               kind: str = ChangeRecord.Kind.PROMOTION, apply_operating_points: bool | None = None) -> ChangeRecord:
    """Move ``alias`` to ``version`` through the gate; returns the change record.

    ``apply_operating_points`` (production only): True applies the thresholds proposed for
    ``version`` against the version it replaces (mlcore.services.operating_points), False
    records that they were not applied; None (other callers) leaves the record silent on it.

    ``expected_current``: the version the admin saw holding the alias ("" = none); when the
    alias holds another one now, the move is refused and the message names who moved it.
    A failing gate raises ``GateBlocked`` (audited ``model.gate_blocked``) unless
    ``override_justification`` is written; then the move is audited ``model.gate_overridden``.
    """
    name = name or settings.MLFLOW_REGISTERED_MODEL
    version = str(version).strip()
    reason = (reason or "").strip()
    justification = (override_justification or "").strip()
    _validate_alias(alias)
    if not version:
        raise PromotionError("choose a version to move the alias to")
    if alias in REASON_REQUIRED and not reason:
        raise PromotionError(f"a reason is required to move {alias}")
    _ensure_in_step(name, alias, version)
    if not ModelVersion.objects.filter(name=name, version=version).exists():
        raise PromotionError(f"{name} has no version {version!r} in the registry")
    blocked: GateVerdict | None = None
    try:
        with transaction.atomic():
            lock_model(name=name)
            current = _check_current(name, alias, expected_current)
            if current == version:
                raise PromotionError(f"v{version} already holds {alias}: already there, nothing to do")
            verdict = gate_check(name=name, alias=alias, version=version)
            if not verdict.passed and (not justification or not verdict.overridable):
                blocked = verdict
            else:
                overridden = not verdict.passed
                record = _record_move(actor=actor, name=name, alias=alias, from_version=current,
                                      to_version=version, kind=kind, verdict=verdict, reason=reason,
                                      override_justification=justification, overridden=overridden)
                if alias == ModelAlias.Alias.PRODUCTION and apply_operating_points is True:
                    operating_points_apply(record=record, actor=actor)
                elif alias == ModelAlias.Alias.PRODUCTION and apply_operating_points is False:
                    operating_points_not_applied(record=record)
                user, label = _actor_fields(actor)
                details = {"alias": alias, "version": version, "previous_version": current or None,
                           "change_record": record.pk, "kind": kind, "reason": reason}
                if overridden:
                    audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_GATE_OVERRIDDEN,
                                       obj=record, details={**details, "justification": justification,
                                                            "failing": [c.name for c in verdict.failures]})
                audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_ALIAS_SET,
                                   object_type="mlcore.modelversion", object_id=f"{name}/{version}",
                                   details=details)
                _apply_in_mlflow(name=name, alias=alias, to_version=version)
                return record
    except _mlflow_errors() as exc:
        raise PromotionError(f"the MLflow registry refused to move {alias} to v{version}: {exc}") from None
    # Outside the transaction: the refusal is audited even though nothing moved.
    user, label = _actor_fields(actor)
    audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_GATE_BLOCKED,
                       object_type="mlcore.modelversion", object_id=f"{name}/{version}",
                       details={"alias": alias, "version": version, "reason": reason,
                                "failing": [c.name for c in blocked.failures]})
    raise GateBlocked(blocked)


def production_rollback(*, actor: Any, reason: str, name: str | None = None,
                        expected_current: str | None = None) -> ChangeRecord:
    """Move ``production`` back to the version that held it before. The gate is not
    required (rolling back restores a version that served); its verdict is recorded."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    reason = (reason or "").strip()
    alias = ModelAlias.Alias.PRODUCTION
    if not reason:
        raise PromotionError("a reason is required to roll production back")
    _ensure_in_step(name, alias)
    try:
        with transaction.atomic():
            lock_model(name=name)
            current = _check_current(name, alias, expected_current)
            target = production_rollback_target(name=name)
            if not current or target is None:
                raise PromotionError("nothing to roll back to: the alias timeline has no earlier production version")
            if not ModelVersion.objects.filter(name=name, version=target).exists():
                raise PromotionError(f"v{target} held production before but is no longer in the registry")
            verdict = gate_check(name=name, alias=alias, version=target)
            record = _record_move(actor=actor, name=name, alias=alias, from_version=current, to_version=target,
                                  kind=ChangeRecord.Kind.ROLLBACK, verdict=verdict, reason=reason,
                                  override_justification="", overridden=False)
            user, label = _actor_fields(actor)
            audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_ROLLED_BACK,
                               object_type="mlcore.modelversion", object_id=f"{name}/{target}",
                               details={"alias": alias, "version": target, "previous_version": current,
                                        "change_record": record.pk, "reason": reason,
                                        "gate_passed": verdict.passed})
            _apply_in_mlflow(name=name, alias=alias, to_version=target)
            return record
    except _mlflow_errors() as exc:
        raise PromotionError(f"the MLflow registry refused the rollback: {exc}") from None


def alias_remove(*, actor: Any, alias: str, reason: str, name: str | None = None,
                 expected_current: str | None = None, kind: str = ChangeRecord.Kind.REMOVAL) -> ChangeRecord:
    """Take ``canary`` or ``candidate`` off its version (production is rolled back or
    replaced, never left empty). ``kind``: ``system`` when no person decided it (the
    canary guard)."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    reason = (reason or "").strip()
    _validate_alias(alias)
    if alias not in REMOVABLE:
        raise PromotionError(f"{alias} cannot be removed: roll it back or promote another version")
    if not reason:
        raise PromotionError(f"a reason is required to remove {alias}")
    _ensure_in_step(name, alias)
    try:
        with transaction.atomic():
            lock_model(name=name)
            current = _check_current(name, alias, expected_current)
            if not current:
                raise PromotionError(f"no version holds {alias}: nothing to remove")
            record = _record_move(actor=actor, name=name, alias=alias, from_version=current, to_version="",
                                  kind=kind, verdict=None, reason=reason,
                                  override_justification="", overridden=False)
            user, label = _actor_fields(actor)
            audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_ALIAS_REMOVED,
                               object_type="mlcore.modelversion", object_id=f"{name}/{current}",
                               details={"alias": alias, "previous_version": current, "change_record": record.pk,
                                        "reason": reason, "kind": kind})
            _apply_in_mlflow(name=name, alias=alias, to_version="")
            return record
    except _mlflow_errors() as exc:
        raise PromotionError(f"the MLflow registry refused to remove {alias}: {exc}") from None


CRITERIA_FIELDS = {
    "max_urgent_sensitivity_drop": float,
    "max_ece": float,
    "max_macro_f1_drop": float,
    "forbid_synthetic_in_production": bool,
}


def _criterion_value(key: str, value: Any) -> float | bool:
    if CRITERIA_FIELDS[key] is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise PromotionError(f"{key} must be true or false, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PromotionError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise PromotionError(f"{key} must be between 0 and 1, got {value!r}")
    return number


@transaction.atomic
def acceptance_criteria_update(*, actor: Any, name: str, **values: Any) -> AcceptanceCriteria:
    """Change the gate's thresholds for ``name``; every value is checked before any is saved."""
    unknown = sorted(set(values) - set(CRITERIA_FIELDS))
    if unknown:
        raise PromotionError(f"unknown criteria {', '.join(unknown)}; accepted: {', '.join(CRITERIA_FIELDS)}")
    cleaned = {k: _criterion_value(k, v) for k, v in values.items()}
    criteria, _ = AcceptanceCriteria.objects.select_for_update().get_or_create(name=name)
    before = {k: getattr(criteria, k) for k in CRITERIA_FIELDS}
    for key, value in cleaned.items():
        setattr(criteria, key, value)
    user, label = _actor_fields(actor)
    criteria.updated_by = user
    criteria.save()
    audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_CRITERIA_CHANGED, obj=criteria,
                       details={"before": before, "after": {k: getattr(criteria, k) for k in CRITERIA_FIELDS}})
    return criteria
