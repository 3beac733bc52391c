"""The rollout page: who serves, the policy, the online comparison against readers (shadow
paired, canary unpaired), the guard's runs and boundary plot, and its operating
characteristic. Thin: parse the what-if inputs, call selectors, render."""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.ml.plots.rollout import guard_boundary_svg
from mlcore.ml.rollout import operating_characteristic
from mlcore.selectors import alias_map
from mlcore.selectors.rollout import (
    CanaryWindow,
    agreement_by_arm,
    canary_vs_production,
    canary_window,
    guard_alert,
    guard_design,
    guard_path,
    guard_runs,
    paired_shadow_agreement,
    read_volume,
    rollout_policy,
    shadow_versions,
)
from mlcore.views.dashboard import ALIAS_ORDER
from mlcore.views.rollout_policy import policy_form_context
from radviewer.lib.auth import permission_required_403

OC_DROPS = (0.05, 0.10, 0.15, 0.20)
DEFAULT_SHARE = 0.10  # the what-if share while no canary routes
FALLBACK_AGREEMENT = 0.87  # the starter model's final_eval accuracy (docs/model-card.md)
VOLUME_DAYS = 14


def _number(raw: str | None, *, label: str, low: float, high: float, errors: list[str]) -> float | None:
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        errors.append(f"{label} must be a number, got {raw!r}")
        return None
    if not math.isfinite(value) or not low <= value <= high:
        errors.append(f"{label} must be between {low:g} and {high:g}, got {raw!r}")
        return None
    return value


def _guard_window(name: str, runs: list) -> CanaryWindow | None:
    """The canary under watch, or the one the latest run looked at (so the plot stays after
    a rollback)."""
    window = canary_window(name=name)
    if window is not None:
        return window
    last = next((r for r in runs if r.canary_version), None)
    if last is None:
        return None
    since = parse_datetime(last.stats.get("since") or "") if last.stats.get("since") else None
    return CanaryWindow(name, last.canary_version, last.production_version, since)


@permission_required_403("accounts.manage_models")
def rollout_page(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    holders = alias_map(name=name)
    policy = rollout_policy(name=name)
    errors: list[str] = []
    design = None
    try:
        design = guard_design(policy)
    except ValueError as exc:
        errors.append(f"the guard's settings are invalid: {exc}")
    production = holders.get("production", "")
    arms = agreement_by_arm(name=name)
    shadow_tables = [paired_shadow_agreement(name=name, shadow_version=v, production_version=production or None)
                     for v in shadow_versions(name=name, candidate=holders.get("candidate", ""))]
    window = canary_window(name=name)
    unpaired = (canary_vs_production(name=name, canary_version=window.canary_version,
                                     production_version=window.production_version, since=window.since)
                if window and window.production_version else None)
    runs = list(guard_runs(name=name, limit=20))
    plot, plot_window = "", _guard_window(name, runs)
    if design is not None and plot_window is not None:
        path = guard_path(plot_window, design)
        plot = guard_boundary_svg(llr=[s.llr for s in path], ready=[s.needs == 0 for s in path],
                                  upper=design.upper, lower=design.lower,
                                  title=f"canary v{plot_window.canary_version} vs production "
                                        f"v{plot_window.production_version}")

    # Operating characteristic at the current (or asked) share and volume.
    share_in = _number(request.GET.get("share"), label="the canary share (%)", low=1, high=50, errors=errors)
    volume_in = _number(request.GET.get("volume"), label="studies per day", low=1, high=100000, errors=errors)
    share = (share_in / 100 if share_in else policy.canary_percent / 100 if policy.canary_percent else DEFAULT_SHARE)
    measured_volume = read_volume(name=name, since=timezone.now() - timedelta(days=VOLUME_DAYS)) / VOLUME_DAYS
    volume = volume_in or measured_volume or 0.0
    prod_row = next((a for a in arms if a.arm == "production" and a.version == production), None)
    measured = bool(prod_row and prod_row.overall.n >= 30 and 0 < prod_row.overall.rate < 1)
    baseline = prod_row.overall.rate if measured else FALLBACK_AGREEMENT
    oc = []
    if design is not None:
        oc = [operating_characteristic(drop=d, share=share, daily_studies=volume, baseline=baseline, design=design)
              for d in OC_DROPS if d < baseline]
    design_row = next((o for o in oc if design and abs(o.drop - design.drop) < 1e-9), None)
    context = {
        "name": name, "holders": [(a, holders.get(a, "")) for a in ALIAS_ORDER], "policy": policy,
        "design": design, "arms": arms, "shadow_tables": shadow_tables, "unpaired": unpaired, "window": window,
        "runs": runs, "plot": plot, "plot_window": plot_window, "oc": oc, "design_row": design_row,
        "share": share, "volume": volume, "measured_volume": measured_volume, "volume_days": VOLUME_DAYS,
        "baseline": baseline, "baseline_measured": measured,
        "errors": errors, "guard_alert": guard_alert(name=name),
        "class_names": {k: c.display_name for k, c in CLASS_BY_KEY.items()},
        "share_percent": round(share * 100, 1),
        **policy_form_context(name),  # the routing form (mlcore.views.rollout_policy), posted in place
    }
    return render(request, "mlcore/rollout/page.html", context)
