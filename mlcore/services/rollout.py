"""The rollout policy set from the console: the canary's share of studies (0-50 %) and the
shadow candidate (on/off, share 1-100 %). DESIGN.md section 7.

Every change is checked whole before anything is saved, runs under the model's alias lock
(so it cannot interleave with an alias move), and leaves a change record per routing change
(the canary's share: a rollout step that changes what readers see; the shadow: a system
change readers never see) and one audit row. Routing reads the policy on the next study.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlcore.models import ChangeRecord, ModelAlias, RolloutPolicy
from mlcore.selectors import alias_map
from mlcore.services.change_records import change_record_sections
from mlcore.services.registry import lock_model
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

CANARY_MAX_PERCENT = 50
SHADOW_MIN_PERCENT, SHADOW_MAX_PERCENT = 1, 100


class RolloutError(ValueError):
    """A policy change that cannot be made as asked; the message says why, nothing changed."""


def _percent(value: Any, *, field: str, low: int, high: int) -> int:
    """An integer percentage in ``low..high``; "25" is taken, 25.5, "a quarter" and True are not."""
    if isinstance(value, bool):
        raise RolloutError(f"{field} must be a whole number from {low} to {high}, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise RolloutError(f"{field} must be a whole number from {low} to {high}, got {value!r}")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise RolloutError(f"{field} must be a whole number from {low} to {high}, got {value!r}")
        value = int(text)
    if not isinstance(value, int):
        raise RolloutError(f"{field} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise RolloutError(f"{field} must be from {low} to {high} %, got {value}")
    return value


def _flag(value: Any, *, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise RolloutError(f"{field} must be on or off, got {value!r}")


def _actor_fields(actor: Any) -> tuple[Any, str]:
    if getattr(actor, "is_authenticated", False):
        return actor, ""
    return None, str(actor or "system")


def _check(*, name: str, holders: dict[str, str], canary: int, shadow: bool) -> None:
    """The rules on the policy as it would be after the change (messages name the fix)."""
    production, canary_v, candidate = (holders.get(a, "") for a in ("production", "canary", "candidate"))
    if canary > 0:
        if not production:
            raise RolloutError(f"cannot route {canary} % of studies to a canary: no version of {name} is in "
                               "production (a canary is compared with production)")
        if not canary_v:
            raise RolloutError(f"cannot route {canary} % of studies to a canary: no version holds the canary "
                               "alias; promote one to canary first")
        if canary_v == production:
            raise RolloutError(f"v{canary_v} holds both canary and production: a canary share would compare "
                               "it with itself")
    if shadow:
        if not candidate:
            raise RolloutError("cannot run a shadow: no version holds the candidate alias; "
                               "promote one to candidate first")
        if not production:
            raise RolloutError(f"cannot run a shadow: no version of {name} is in production "
                               "(the shadow predicts after production)")
        if candidate == production:
            raise RolloutError(f"v{candidate} is the candidate and already in production: "
                               "a shadow of production would compare it with itself; turn the shadow off")
        if candidate == canary_v:
            raise RolloutError(f"v{candidate} holds both candidate and canary: the same version cannot be "
                               "shadow and canary at once; turn the shadow off, remove one of the aliases "
                               "or choose another candidate")


def _record(*, actor: Any, name: str, alias: str, kind: str, version: str, reason: str,
            change: dict[str, Any], now: Any) -> ChangeRecord:
    user, label = _actor_fields(actor)
    sections = change_record_sections(
        name=name, alias=alias, from_version=version, to_version=version, kind=kind, verdict=None,
        actor_label=user.get_username() if user else label, reason=reason, override_justification="", at=now)
    sections["routing_change"] = change
    return ChangeRecord.objects.create(name=name, alias=alias, kind=kind, from_version=version,
                                       to_version=version, actor=user, actor_label=label, reason=reason,
                                       sections=sections)


def rollout_policy_update(*, name: str | None = None, actor: Any, canary_percent: Any = None,
                          shadow_candidate: Any = None, shadow_percent: Any = None, reason: str = "",
                          request: Any = None) -> RolloutPolicy:
    """Set the canary share (0-50 %), shadow on/off and the shadow share (1-100 %) of
    ``name``; None leaves a value as it is. A reason is required. Starting a canary (share
    from 0 to more) stamps ``canary_started_at``; turning the shadow on stamps
    ``shadow_started_at``. Raises ``RolloutError`` (nothing saved) on bad input."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    reason = (reason or "").strip()
    new_canary = None if canary_percent is None else _percent(
        canary_percent, field="canary share", low=0, high=CANARY_MAX_PERCENT)
    new_shadow = None if shadow_candidate is None else _flag(shadow_candidate, field="shadow")
    new_shadow_pct = None if shadow_percent is None else _percent(
        shadow_percent, field="shadow share", low=SHADOW_MIN_PERCENT, high=SHADOW_MAX_PERCENT)
    if not reason:
        raise RolloutError("a reason is required to change the rollout policy")
    with transaction.atomic():
        lock_model(name=name)
        policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(name=name)
        before = {"canary_percent": policy.canary_percent, "shadow_candidate": policy.shadow_candidate,
                  "shadow_percent": policy.shadow_percent}
        after = {
            "canary_percent": before["canary_percent"] if new_canary is None else new_canary,
            "shadow_candidate": before["shadow_candidate"] if new_shadow is None else new_shadow,
            "shadow_percent": before["shadow_percent"] if new_shadow_pct is None else new_shadow_pct,
        }
        if after == before:
            raise RolloutError("nothing to change: the policy already has these values")
        holders = alias_map(name=name)
        _check(name=name, holders=holders, canary=after["canary_percent"], shadow=after["shadow_candidate"])
        now = timezone.now()
        if before["canary_percent"] == 0 and after["canary_percent"] > 0:
            policy.canary_started_at = now
        if not before["shadow_candidate"] and after["shadow_candidate"]:
            policy.shadow_started_at = now
        for key, value in after.items():
            setattr(policy, key, value)
        policy.save()

        records = []
        if after["canary_percent"] != before["canary_percent"]:
            records.append(_record(
                actor=actor, name=name, alias=ModelAlias.Alias.CANARY, kind=ChangeRecord.Kind.PROMOTION,
                version=holders.get("canary", ""), reason=reason, now=now,
                change={"canary_percent": {"from": before["canary_percent"], "to": after["canary_percent"]}}))
        shadow_keys = ("shadow_candidate", "shadow_percent")
        if any(after[k] != before[k] for k in shadow_keys):
            records.append(_record(
                actor=actor, name=name, alias=ModelAlias.Alias.CANDIDATE, kind=ChangeRecord.Kind.SYSTEM,
                version=holders.get("candidate", ""), reason=reason, now=now,
                change={k: {"from": before[k], "to": after[k]} for k in shadow_keys if after[k] != before[k]}))
        user, label = _actor_fields(actor)
        audit_event_create(actor=user, actor_label=label, action=AuditAction.MODEL_ROLLOUT_CHANGED, obj=policy,
                           request=request, details={"name": name, "before": before, "after": after,
                                                     "reason": reason, "change_records": [r.pk for r in records],
                                                     "aliases": holders})
    return policy


def rollout_alias_moved(*, name: str, alias: str, to_version: str, at: Any) -> None:
    """Called inside an alias move's transaction: a canary (or shadow candidate) that moves
    to another version starts again, so the reads counted since then are the new version's."""
    if not to_version or alias not in (ModelAlias.Alias.CANARY, ModelAlias.Alias.CANDIDATE):
        return
    policy = RolloutPolicy.objects.select_for_update().filter(name=name).first()
    if policy is None:
        return
    if alias == ModelAlias.Alias.CANARY:
        policy.canary_started_at = at
        policy.save(update_fields=["canary_started_at", "updated_at"])
    elif policy.shadow_candidate:
        policy.shadow_started_at = at
        policy.save(update_fields=["shadow_started_at", "updated_at"])
