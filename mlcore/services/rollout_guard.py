"""The canary guard: one run of the sequential test of the canary's agreement with readers
against production's (``mlcore.ml.rollout.sequential``), plus the canary's error rate and
latency, and what it does about the result.

The beat task is a clinical adapter (``clinical.rollout_guard``): prediction failures and
latencies live in clinical tables, which mlcore never reads, so the task reads them through
a clinical selector and passes them in as ``ops``; on a rollback it asks the clinical
webhook service to tell the ML-alert clients.

Decisions (``GuardRun.Decision``):
- ``idle``: no canary, or the guard switched off;
- ``waiting``: fewer than the minimum reads in an arm (the reason says how many it has);
- ``continue``: between the boundaries;
- ``accept``: the canary is no worse by the design drop; said, never promoted. The agreement
  test is then settled for this canary (looking on would spend the false-rollback rate again);
  errors and latency are still watched;
- ``rollback``: the upper boundary, or an operations limit: the ``canary`` alias is removed
  through the promotion service (a ``system`` change record, audited) and the canary share
  set to 0 in the same transaction, so routing (``choose_model``) stops at once.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import transaction

from mlcore.ml.rollout import wilson_interval
from mlcore.ml.rollout.sequential import sprt_state
from mlcore.models import ChangeRecord, GuardRun, RolloutPolicy
from mlcore.selectors.rollout import CanaryWindow, canary_window, guard_design, guard_outcomes, rollout_policy
from mlcore.services.promotion import PromotionError, alias_remove
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

GUARD_ACTOR = "system:canary-guard"
# Operations limits decide only on enough predictions: one failure in two is not a rate.
OPS_MIN_PREDICTIONS = 10
OPS_MIN_LATENCIES = 20


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ops_findings(ops: dict[str, Any] | None, policy: RolloutPolicy) -> tuple[list[str], dict[str, Any]]:
    """Operations limits crossed by the canary, and the figures for the run's stats."""
    if not ops:
        return [], {}
    canary, prod = ops.get("canary") or {}, ops.get("production") or {}
    findings, figures = [], {}
    n, failed = int(canary.get("predictions", 0)), int(canary.get("failed", 0))
    if n:
        low, _ = wilson_interval(failed, n)
        figures.update({"canary_predictions": n, "canary_failed": failed, "error_rate": failed / n,
                        "error_rate_low": low})
        # Rolled back only when even the interval's lower end exceeds the limit.
        if n >= OPS_MIN_PREDICTIONS and low > policy.guard_max_error_rate:
            findings.append(f"the canary's error rate is {failed}/{n} ({failed / n:.1%}, 95 % interval from "
                            f"{low:.1%}), above the limit of {policy.guard_max_error_rate:.1%}")
    c95, p95 = canary.get("latency_p95_ms"), prod.get("latency_p95_ms")
    figures.update({"latency_p95_ms": c95, "production_latency_p95_ms": p95})
    if (c95 is not None and p95 and int(canary.get("latencies", 0)) >= OPS_MIN_LATENCIES
            and int(prod.get("latencies", 0)) >= OPS_MIN_LATENCIES):
        ratio = c95 / p95
        figures["latency_ratio"] = ratio
        if ratio > policy.guard_max_latency_ratio:
            findings.append(f"the canary's p95 latency is {c95:.0f} ms, {ratio:.1f}x production's {p95:.0f} ms "
                            f"(limit {policy.guard_max_latency_ratio:g}x)")
    return findings, figures


def _record(*, name: str, window: CanaryWindow | None, decision: str, reason: str, stats: dict,
            change_record: ChangeRecord | None = None) -> GuardRun:
    if decision == GuardRun.Decision.IDLE:
        # Idle is the usual state between canaries: one row per idle spell, not one a minute.
        last = GuardRun.objects.filter(name=name).first()
        if last is not None and last.decision == decision and last.reason == reason:
            return last
    return GuardRun.objects.create(
        name=name, canary_version=window.canary_version if window else "",
        production_version=window.production_version if window else "",
        decision=decision, reason=reason, stats=_json_safe(stats), change_record=change_record)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rollback(*, name: str, window: CanaryWindow, reason: str, stats: dict) -> GuardRun:
    """Remove the canary alias and stop routing in one transaction; when the registry
    refuses the move, routing is stopped anyway (the safe side) and the run says why the
    alias is still there (the next run tries again on the same reads)."""
    try:
        with transaction.atomic():
            record = alias_remove(actor=GUARD_ACTOR, alias="canary", name=name, reason=f"canary guard: {reason}",
                                  expected_current=window.canary_version, kind=ChangeRecord.Kind.SYSTEM)
            before = _stop_routing(name)
            run = _record(name=name, window=window, decision=GuardRun.Decision.ROLLBACK, reason=reason,
                          stats={**stats, "canary_percent_before": before}, change_record=record)
            audit_event_create(actor=None, actor_label=GUARD_ACTOR, action=AuditAction.MODEL_CANARY_GUARD_ROLLBACK,
                               obj=run, details={"canary_version": window.canary_version,
                                                 "production_version": window.production_version,
                                                 "change_record": record.pk, "canary_percent_before": before,
                                                 "reason": reason})
            return run
    except PromotionError as exc:
        with transaction.atomic():
            before = _stop_routing(name)
            run = _record(name=name, window=window, decision=GuardRun.Decision.ROLLBACK,
                          reason=f"{reason}. Routing to the canary stopped (share 0 %), but the canary alias could "
                                 f"not be removed: {exc}", stats={**stats, "canary_percent_before": before})
            audit_event_create(actor=None, actor_label=GUARD_ACTOR, action=AuditAction.MODEL_CANARY_GUARD_ROLLBACK,
                               obj=run, details={"canary_version": window.canary_version, "change_record": None,
                                                 "canary_percent_before": before, "reason": reason,
                                                 "alias_error": str(exc)})
            return run


def _stop_routing(name: str) -> int:
    policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(name=name)
    before = policy.canary_percent
    policy.canary_percent = 0
    policy.save(update_fields=["canary_percent", "updated_at"])
    return before


def guard_run(*, name: str | None = None, ops: dict[str, Any] | None = None) -> GuardRun:
    """One run of the guard for model ``name``; returns the recorded ``GuardRun``.

    ``ops``: ``{"canary": {"predictions", "failed", "latencies", "latency_p95_ms"},
    "production": {...}}`` since the canary started (the clinical side's figures), or
    ``None`` to judge agreement alone.
    """
    name = name or settings.MLFLOW_REGISTERED_MODEL
    policy = rollout_policy(name=name)
    window = canary_window(name=name)
    if not policy.guard_enabled:
        return _record(name=name, window=window, decision=GuardRun.Decision.IDLE, reason="the guard is switched off",
                       stats={})
    if window is None:
        return _record(name=name, window=None, decision=GuardRun.Decision.IDLE, reason="no version holds canary",
                       stats={})
    if not window.production_version:
        return _record(name=name, window=window, decision=GuardRun.Decision.IDLE,
                       reason="no version holds production: nothing to compare the canary with", stats={})
    try:
        design = guard_design(policy)
    except ValueError as exc:
        return _record(name=name, window=window, decision=GuardRun.Decision.IDLE,
                       reason=f"the guard's settings are invalid, nothing decided: {exc}", stats={})
    outcomes = guard_outcomes(window)
    k = {"canary": 0, "production": 0}
    n = {"canary": 0, "production": 0}
    for arm, agreed in outcomes:
        n[arm] += 1
        k[arm] += agreed
    state = sprt_state(agree_canary=k["canary"], n_canary=n["canary"], agree_production=k["production"],
                       n_production=n["production"], design=design)
    findings, ops_figures = _ops_findings(ops, policy)
    stats = {**state.to_dict(), **ops_figures, "since": window.since.isoformat() if window.since else None,
             "alpha": design.alpha, "power": design.power, "drop": design.drop, "min_reads": design.min_reads,
             "canary_percent": policy.canary_percent}
    accepted = (GuardRun.objects.filter(name=name, canary_version=window.canary_version,
                                        decision=GuardRun.Decision.ACCEPT)
                .filter(**({"ran_at__gte": window.since} if window.since else {})).order_by("ran_at").first())
    agreement = (f"agreement canary {k['canary']}/{n['canary']} ({_fmt(state.rate_canary)}) vs production "
                 f"{k['production']}/{n['production']} ({_fmt(state.rate_production)}), "
                 f"log-likelihood ratio {state.llr:.2f} "
                 f"(roll back at {design.upper:.2f}, accept at {design.lower:.2f})")
    if findings:
        return _rollback(name=name, window=window, reason="; ".join(findings), stats=stats)
    if accepted is not None:
        return _record(name=name, window=window, decision=GuardRun.Decision.ACCEPT, stats=stats,
                       reason=f"accepted at {accepted.ran_at:%Y-%m-%d %H:%M} (no worse by {design.drop:.0%}); "
                              f"not promoted automatically; errors and latency still watched. Now: {agreement}")
    if state.decision == "waiting":
        return _record(name=name, window=window, decision=GuardRun.Decision.WAITING, stats=stats,
                       reason=f"needs {design.min_reads} reads per arm, has {n['canary']} (canary "
                              f"v{window.canary_version}) and {n['production']} (production "
                              f"v{window.production_version})")
    if state.decision == "rollback":
        return _rollback(name=name, window=window, stats=stats,
                         reason=f"the canary's agreement with readers is worse than production's: {agreement}")
    if state.decision == "accept":
        return _record(name=name, window=window, decision=GuardRun.Decision.ACCEPT, stats=stats,
                       reason=f"the canary is no worse than production by {design.drop:.0%}: {agreement}. "
                              "Promote it from the console if you want it in production (never automatic).")
    return _record(name=name, window=window, decision=GuardRun.Decision.CONTINUE, stats=stats,
                   reason=f"no boundary crossed: {agreement}")
