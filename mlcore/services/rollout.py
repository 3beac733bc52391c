"""Rollout policy writes (stand-in for issue 11's module: at merge the lead keeps the
shadow/canary helper's version, which has this same function and signature)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mlcore.models import RolloutPolicy
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

MAX_CANARY_PERCENT = 50


def rollout_policy_update(*, name: str, actor: Any, canary_percent: int | None = None,
                          shadow_candidate: bool | None = None, shadow_percent: int | None = None,
                          reason: str = "", request: Any = None) -> RolloutPolicy:
    """Change how studies are routed for model ``name``; validated, audited, atomic.
    ``None`` leaves a field as it is. Turning shadow on stamps ``shadow_started_at``."""
    errors: dict[str, str] = {}
    if canary_percent is not None and (isinstance(canary_percent, bool) or not isinstance(canary_percent, int)
                                       or not 0 <= canary_percent <= MAX_CANARY_PERCENT):
        errors["canary_percent"] = f"must be a whole number from 0 to {MAX_CANARY_PERCENT}, got {canary_percent!r}"
    if shadow_percent is not None and (isinstance(shadow_percent, bool) or not isinstance(shadow_percent, int)
                                       or not 1 <= shadow_percent <= 100):
        errors["shadow_percent"] = f"must be a whole number from 1 to 100, got {shadow_percent!r}"
    if shadow_candidate is not None and not isinstance(shadow_candidate, bool):
        errors["shadow_candidate"] = f"must be true or false, got {shadow_candidate!r}"
    if errors:
        raise ValidationError(errors)
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(name=name)
        before = {"canary_percent": policy.canary_percent, "shadow_candidate": policy.shadow_candidate,
                  "shadow_percent": policy.shadow_percent}
        if canary_percent is not None:
            policy.canary_percent = canary_percent
        if shadow_percent is not None:
            policy.shadow_percent = shadow_percent
        if shadow_candidate is not None:
            if shadow_candidate and not policy.shadow_candidate:
                policy.shadow_started_at = timezone.now()
            policy.shadow_candidate = shadow_candidate
        policy.save()
        after = {"canary_percent": policy.canary_percent, "shadow_candidate": policy.shadow_candidate,
                 "shadow_percent": policy.shadow_percent}
        audit_event_create(actor=user, actor_label="" if user else str(actor or "system"),
                           action=AuditAction.ROLLOUT_POLICY_CHANGED, obj=policy, request=request,
                           details={"name": name, "before": before, "after": after, "reason": reason})
    return policy
