"""Blinded reads (automation bias): which studies are read with the AI hidden, and the share.

A study is chosen at ingest, deterministically from its UID (a salted hash, independent of
the canary bucket so blinding and canary routing do not correlate): the same UID is always
chosen or never, whatever retries happen. The share comes from ``RolloutPolicy.blinded_percent``
(0..100, set from the console), else ``settings.BLINDED_READS_DEFAULT_PERCENT`` (3 %).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from django.conf import settings
from django.db import transaction

from mlcore.models import RolloutPolicy
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

BUCKETS = 10_000  # 0.01-point resolution


class BlindingError(ValueError):
    """Bad input for the blinded share (the message says what is accepted)."""


def blinded_bucket(study_uid: str) -> int:
    """0..9999, stable for a study UID."""
    digest = hashlib.sha256(f"blinded-read:{study_uid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


def blinded_percent(*, name: str | None = None) -> float:
    name = name or settings.MLFLOW_REGISTERED_MODEL
    value = RolloutPolicy.objects.filter(name=name).values_list("blinded_percent", flat=True).first()
    return float(settings.BLINDED_READS_DEFAULT_PERCENT if value is None else value)


def blinded_read_chosen(*, study_uid: str, name: str | None = None) -> bool:
    """Is this study read blinded? (A read of the policy only: it runs inside ingest.)"""
    return blinded_bucket(study_uid) < round(blinded_percent(name=name) * BUCKETS / 100)


def _parse_percent(value: Any) -> float:
    text = str(value).strip().rstrip("%").strip() if value is not None else ""
    if not text:
        raise BlindingError("enter the share of blinded reads, a number from 0 to 100 (per cent)")
    try:
        number = float(text)
    except ValueError:
        raise BlindingError(f"the blinded share must be a number from 0 to 100 (per cent), got {value!r}") from None
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise BlindingError(f"the blinded share must be between 0 and 100 (per cent), got {value!r}")
    return round(number, 2)


def blinded_share_set(*, actor: Any, value: Any, name: str | None = None) -> RolloutPolicy:
    """Set the share of new studies read blinded (0..100 %); audited. Studies already
    ingested keep their choice."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    percent = _parse_percent(value)
    with transaction.atomic():
        policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(name=name)
        before = blinded_percent(name=name)
        policy.blinded_percent = percent
        policy.save(update_fields=["blinded_percent", "updated_at"])
        user = actor if getattr(actor, "is_authenticated", False) else None
        audit_event_create(actor=user, actor_label="" if user else str(actor or "system"),
                           action=AuditAction.ROLLOUT_BLINDED_SHARE_CHANGED, obj=policy,
                           details={"name": name, "before": before, "after": percent})
    return policy
