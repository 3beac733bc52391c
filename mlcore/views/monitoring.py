"""The console's monitoring page (degradation from reader feedback) and the continuous-
training pipeline page (runs with their steps, live; the admin's trigger button)."""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mlcore.selectors.degradation import ALL_CLASSES, agreement_cusum, daily_agreement
from mlcore.selectors.pipeline import pipeline_runs
from mlcore.services.pipeline import corrections_since_snapshot, pipeline_trigger
from radviewer.lib.auth import permission_required_403

PERM = "accounts.manage_models"


@permission_required_403(PERM)
def monitoring(request: HttpRequest) -> HttpResponse:
    from mlcore.ml.plots.monitoring import cusum_svg, daily_agreement_svg  # matplotlib: this page only

    name = settings.MLFLOW_REGISTERED_MODEL
    days = daily_agreement(model_name=name, days=30)
    overall: dict[str, list] = defaultdict(list)
    for d in days:
        if d.predicted_class == ALL_CLASSES:
            overall[d.model_version].append((d.day, d.rate, d.low, d.high, d.reads))
    charts = agreement_cusum(model_name=name)
    chart_rows = [{"chart": c, "svg": cusum_svg(c.statistic, threshold=c.design.h, alarm_index=c.alarm_index,
                                                title=f"v{c.model_version}: agreement CUSUM")
                   if c.design else ""} for c in charts]
    return render(request, "mlcore/monitoring.html", {
        "daily_svg": daily_agreement_svg(dict(overall)),
        "days": [d for d in days if d.predicted_class != ALL_CLASSES][-200:],
        "overall_days": [d for d in days if d.predicted_class == ALL_CLASSES],
        "charts": chart_rows,
        "drop_points": settings.AGREEMENT_CUSUM_DROP_PERCENT,
        "arl0_target": settings.AGREEMENT_CUSUM_ARL0,
        "baseline_reads": settings.AGREEMENT_CUSUM_BASELINE_READS,
    })


@permission_required_403(PERM)
def pipeline(request: HttpRequest) -> HttpResponse:
    count, since = corrections_since_snapshot()
    context = {"runs": pipeline_runs(), "corrections": count, "since": since,
               "threshold": settings.PIPELINE_CORRECTIONS, "schedule_hours": settings.PIPELINE_SCHEDULE_HOURS,
               "auto_canary": settings.PIPELINE_AUTO_CANARY}
    template = "mlcore/pipeline.html#runs" if request.htmx else "mlcore/pipeline.html"
    return render(request, template, context)


@permission_required_403(PERM)
@require_POST
def pipeline_start(request: HttpRequest) -> HttpResponse:
    reason = request.POST.get("reason", "").strip()[:500]
    try:
        run = pipeline_trigger(kind="manual", actor=request.user, reason=reason or "started from the console")
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Pipeline run {run.pk}: {run.message}.")
    return redirect("mlcore:pipeline")
