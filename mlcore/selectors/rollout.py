"""Reads of the rollout page and the canary guard: agreement with the readers' final
readings per version, arm and class (unpaired for a canary, paired on ``case_ref`` for a
shadow), the guard's window, counts and runs.

Agreement = the version's top class equals the reader's final reading
(``ReviewOutcome.confirmed_class``). Uncertain and non-diagnostic verdicts (no final class)
say nothing about the model: they are left out and counted. "Per class" is per the reader's
reading, the only class two versions read on the same study share.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet

from mlcore.ml.rollout import (
    GuardDesign,
    PairedComparison,
    Proportion,
    ProportionDifference,
    newcombe_difference,
    paired_comparison,
)
from mlcore.ml.rollout.sequential import SprtState, sprt_path
from mlcore.models import AliasEvent, ChangeRecord, GuardRun, ReviewOutcome, RolloutPolicy
from mlcore.selectors import alias_map

DECISIVE = ("agree", "corrected")
ARMS = ("production", "canary", "shadow")


def rollout_policy(*, name: str) -> RolloutPolicy:
    """The model's policy, or the defaults (unsaved) when none was ever written."""
    return RolloutPolicy.objects.filter(name=name).first() or RolloutPolicy(name=name)


def guard_design(policy: RolloutPolicy) -> GuardDesign:
    """The policy's sequential-test settings; ``ValueError`` says which one is out of range."""
    return GuardDesign(alpha=policy.guard_alpha, power=policy.guard_power, drop=policy.guard_drop,
                       min_reads=policy.guard_min_reads)


def _decisive(qs: QuerySet[ReviewOutcome]) -> QuerySet[ReviewOutcome]:
    return qs.filter(verdict__in=DECISIVE).exclude(confirmed_class="")


def _excluded(qs: QuerySet[ReviewOutcome]) -> QuerySet[ReviewOutcome]:
    return qs.filter(~Q(verdict__in=DECISIVE) | Q(confirmed_class=""))


@dataclass
class ArmAgreement:
    version: str
    arm: str
    overall: Proportion = field(default_factory=lambda: Proportion(0, 0))
    per_class: dict[str, Proportion] = field(default_factory=dict)
    excluded: int = 0  # uncertain / non-diagnostic reads left out


def agreement_by_arm(*, name: str, since: datetime | None = None) -> list[ArmAgreement]:
    """Per version and arm: agreement with the readers overall and per reader class, with
    the number of reads (intervals: ``Proportion.interval``)."""
    qs = ReviewOutcome.objects.filter(model_name=name)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    cells: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for version, arm, predicted, confirmed in _decisive(qs).values_list(
            "model_version", "arm", "predicted_class", "confirmed_class"):
        cell = cells[(version, arm)][confirmed]
        cell[0] += predicted == confirmed
        cell[1] += 1
    excluded = defaultdict(int)
    for version, arm in _excluded(qs).values_list("model_version", "arm"):
        excluded[(version, arm)] += 1
    out = []
    for key in sorted(set(cells) | set(excluded), key=lambda k: (k[0], ARMS.index(k[1]) if k[1] in ARMS else 9)):
        classes = cells.get(key, {})
        k = sum(c[0] for c in classes.values())
        n = sum(c[1] for c in classes.values())
        out.append(ArmAgreement(key[0], key[1], Proportion(k, n),
                                {cls: Proportion(*c) for cls, c in sorted(classes.items())}, excluded[key]))
    return out


@dataclass
class PairedTable:
    shadow_version: str
    production_version: str
    overall: PairedComparison
    per_class: dict[str, PairedComparison]
    unpaired_shadow: int  # decisive shadow reads whose case has no decisive production read
    excluded: int


def paired_shadow_agreement(*, name: str, shadow_version: str, production_version: str | None = None,
                            since: datetime | None = None) -> PairedTable:
    """Shadow vs production on the same studies (``case_ref``): per reader class and overall,
    both agreement rates, the difference shadow - production with its interval, McNemar's p.
    Production's reads of any version count unless ``production_version`` is given."""
    base = ReviewOutcome.objects.filter(model_name=name)
    if since is not None:
        base = base.filter(created_at__gte=since)
    shadow_qs = base.filter(arm="shadow", model_version=shadow_version).exclude(case_ref="")
    prod_qs = base.filter(arm="production").exclude(case_ref="")
    if production_version:
        prod_qs = prod_qs.filter(model_version=production_version)
    shadow = {case: (pred, conf) for case, pred, conf in
              _decisive(shadow_qs).values_list("case_ref", "predicted_class", "confirmed_class")}
    prod = {case: (pred, conf) for case, pred, conf in
            _decisive(prod_qs.filter(case_ref__in=list(shadow)))
            .values_list("case_ref", "predicted_class", "confirmed_class")}
    cells: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # both, only shadow, only prod, neither
    for case, (s_pred, conf) in shadow.items():
        if case not in prod:
            continue
        p_pred, p_conf = prod[case]
        reading = p_conf or conf  # the same reader's final reading of the study
        s_ok, p_ok = s_pred == reading, p_pred == reading
        cells[reading][0 if s_ok and p_ok else 1 if s_ok else 2 if p_ok else 3] += 1
    total = [sum(c[i] for c in cells.values()) for i in range(4)]
    return PairedTable(
        shadow_version=shadow_version, production_version=production_version or "",
        overall=paired_comparison(*total),
        per_class={cls: paired_comparison(*c) for cls, c in sorted(cells.items())},
        unpaired_shadow=sum(1 for case in shadow if case not in prod),
        excluded=_excluded(shadow_qs).count(),
    )


@dataclass
class UnpairedTable:
    canary_version: str
    production_version: str
    overall: ProportionDifference  # canary - production
    per_class: dict[str, ProportionDifference]


def canary_vs_production(*, name: str, canary_version: str, production_version: str,
                         since: datetime | None = None) -> UnpairedTable:
    """Canary vs production on different studies since ``since``: per reader class and
    overall, the difference canary - production with Newcombe's interval."""
    rows = {a.arm: a for a in agreement_by_arm(name=name, since=since)
            if (a.arm, a.version) in (("canary", canary_version), ("production", production_version))}
    canary = rows.get("canary", ArmAgreement(canary_version, "canary"))
    prod = rows.get("production", ArmAgreement(production_version, "production"))
    classes = sorted(set(canary.per_class) | set(prod.per_class))

    def diff(a: Proportion, b: Proportion) -> ProportionDifference:
        return newcombe_difference(a.k, a.n, b.k, b.n)

    zero = Proportion(0, 0)
    return UnpairedTable(canary_version, production_version, diff(canary.overall, prod.overall),
                         {c: diff(canary.per_class.get(c, zero), prod.per_class.get(c, zero)) for c in classes})


# -- the guard --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CanaryWindow:
    name: str
    canary_version: str
    production_version: str
    since: datetime | None  # when the canary alias moved onto its version


def canary_window(*, name: str) -> CanaryWindow | None:
    """The canary under watch, production and since when; ``None`` without a canary."""
    holders = alias_map(name=name)
    canary = holders.get("canary")
    if not canary:
        return None
    policy = rollout_policy(name=name)
    event = (AliasEvent.objects.filter(name=name, alias="canary", ended_at__isnull=True, version=canary)
             .values_list("started_at", flat=True).first())
    starts = [t for t in (event, policy.canary_started_at) if t is not None]
    return CanaryWindow(name, canary, holders.get("production", ""), max(starts) if starts else None)


def guard_outcomes(window: CanaryWindow) -> list[tuple[str, bool]]:
    """The decisive reads of the canary and of production since the canary started, in the
    order they were recorded: (arm, agreed)."""
    qs = ReviewOutcome.objects.filter(model_name=window.name).filter(
        Q(arm="canary", model_version=window.canary_version)
        | Q(arm="production", model_version=window.production_version))
    if window.since is not None:
        qs = qs.filter(created_at__gte=window.since)
    return [(arm, predicted == confirmed) for arm, predicted, confirmed in
            _decisive(qs).order_by("created_at", "id").values_list("arm", "predicted_class", "confirmed_class")]


def guard_path(window: CanaryWindow, design: GuardDesign) -> list[SprtState]:
    """The guard's statistic after each read (the boundary plot)."""
    return sprt_path(guard_outcomes(window), design)


def guard_runs(*, name: str, limit: int = 20) -> QuerySet[GuardRun]:
    return GuardRun.objects.filter(name=name).select_related("change_record")[:limit]


def guard_alert(*, name: str) -> GuardRun | None:
    """The guard's latest rollback while no canary was started after it: what the console's
    banner tells ML admins."""
    run = GuardRun.objects.filter(name=name, decision=GuardRun.Decision.ROLLBACK).first()
    if run is None:
        return None
    moved_since = ChangeRecord.objects.filter(name=name, alias="canary", created_at__gt=run.ran_at).exclude(
        kind=ChangeRecord.Kind.SYSTEM).exists()
    return None if moved_since else run


def guard_alert_payload(*, run_id: int) -> dict:
    """What the signed ``model.canary_rolled_back`` webhook says about a guard's rollback."""
    run = GuardRun.objects.select_related("change_record").get(pk=run_id)
    return {
        "model": run.name, "canary_version": run.canary_version, "production_version": run.production_version,
        "decision": run.decision, "reason": run.reason, "ran_at": run.ran_at.isoformat(),
        "change_record": run.change_record_id, "stats": run.stats,
    }


def shadow_versions(*, name: str, candidate: str = "") -> list[str]:
    """Versions with shadow reads, and the candidate (in shadow or about to be)."""
    versions = set(ReviewOutcome.objects.filter(model_name=name, arm="shadow")
                   .values_list("model_version", flat=True).distinct())
    if candidate:
        versions.add(candidate)
    return sorted(versions, key=lambda v: (len(v), v))


def read_volume(*, name: str, since: datetime) -> int:
    """Studies read since ``since`` (decisive or not; shadow reads are of studies already
    counted): the daily volume the operating characteristic assumes."""
    return (ReviewOutcome.objects.filter(model_name=name, created_at__gte=since)
            .exclude(arm="shadow").count())

