"""/ml/drift/: drift over time per served version and the latest reports (thin: selectors,
one plot, render)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mlcore.selectors import alias_map
from mlcore.selectors.drift import (
    DETECTOR_NAMES,
    drift_history,
    drift_latest,
    drift_observation_counts,
    drift_reports,
)
from radviewer.lib.auth import permission_required_403


@permission_required_403("accounts.manage_models")
def drift_page(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    history = drift_history(name=name)
    plot = ""
    if history:
        from mlcore.ml.plots.drift import drift_history_svg  # matplotlib: only with data

        series: dict[str, dict[str, list]] = {d: {} for d in DETECTOR_NAMES}
        for (version, detector), points in history.items():
            series.setdefault(detector, {})[version] = [(p.at, p.p_value, p.alarm) for p in points]
        plot = drift_history_svg({d: s for d, s in series.items() if s}, alpha=settings.DRIFT_ALPHA,
                                 titles=DETECTOR_NAMES)
    holders = alias_map(name=name)
    served = {alias: holders.get(alias) for alias in ("production", "canary", "candidate")}
    return render(request, "mlcore/drift.html", {
        "name": name,
        "plot": plot,
        "latest": drift_latest(name=name),
        "recent": drift_reports(name=name, limit=30),
        "observed": drift_observation_counts(name=name),
        "served": served,
        "detector_names": DETECTOR_NAMES,
        "window": settings.DRIFT_WINDOW,
        "alpha": settings.DRIFT_ALPHA,
        "permutations": settings.DRIFT_PERMUTATIONS,
        "every_s": settings.DRIFT_CHECK_SECONDS,
    })
