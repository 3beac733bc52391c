"""Reads of the rollout policy (the console's form, routing reads it in the inference service)."""

from __future__ import annotations

from mlcore.models import RolloutPolicy


def rollout_policy_get(*, name: str) -> RolloutPolicy:
    """The policy of ``name``; an unsaved default one (no canary, no shadow) when none is stored."""
    return RolloutPolicy.objects.filter(name=name).first() or RolloutPolicy(name=name)
