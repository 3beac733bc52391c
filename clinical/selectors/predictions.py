"""Reads about predictions' progress (the sweeper's limits, as the viewer shows them)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from clinical.models import Prediction


def prediction_cutoffs(now: datetime) -> tuple[datetime, datetime]:
    """(queued before this: its message is overdue, started before this: its worker is gone)."""
    return (now - timedelta(seconds=settings.PREDICTION_REQUEUE_AFTER_SECONDS),
            now - timedelta(seconds=settings.PREDICTION_STALE_SECONDS))


def prediction_is_stuck(prediction: Prediction | None, *, now: datetime | None = None) -> bool:
    """Queued or running past the limits of ``clinical.predictions_recover``: the reader may
    retry it now rather than wait for the sweeper."""
    if prediction is None:
        return False
    queued_cutoff, running_cutoff = prediction_cutoffs(now or timezone.now())
    if prediction.status == Prediction.Status.QUEUED:
        return (prediction.queued_at or prediction.created_at) < queued_cutoff
    if prediction.status == Prediction.Status.RUNNING:
        return (prediction.started_at or prediction.created_at) < running_cutoff
    return False


def arm_operations(*, model_name: str, versions: dict[str, str], since: datetime | None) -> dict[str, dict]:
    """Per arm (``versions``: arm -> model version), the predictions made since ``since``:
    how many finished, how many failed, and the p95 latency of the succeeded ones (what the
    canary guard weighs besides agreement)."""
    out: dict[str, dict] = {}
    for arm, version in versions.items():
        qs = Prediction.objects.filter(model_name=model_name, model_version=version, arm=arm,
                                       status__in=(Prediction.Status.SUCCEEDED, Prediction.Status.FAILED))
        if since is not None:
            qs = qs.filter(created_at__gte=since)
        failed = qs.filter(status=Prediction.Status.FAILED).count()
        latencies = sorted(qs.filter(status=Prediction.Status.SUCCEEDED, latency_ms__isnull=False)
                           .values_list("latency_ms", flat=True))
        out[arm] = {"version": version, "predictions": qs.count(), "failed": failed, "latencies": len(latencies),
                    "latency_p95_ms": _percentile(latencies, 95) if latencies else None}
    return out


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# A production (or canary) prediction queued longer than this while a worker is free to run
# shadow work has a message that does not reach it (lost: the sweeper re-sends it); the
# shadow no longer waits for it, so a lost message cannot keep shadow work yielding forever.
SHADOW_YIELDS_FOR_SECONDS = 5


def production_work_waiting(*, now: datetime | None = None) -> bool:
    """A reader-facing prediction was queued in the last few seconds and waits for a worker:
    a shadow prediction about to start yields to it (``clinical.run_prediction``)."""
    since = (now or timezone.now()) - timedelta(seconds=SHADOW_YIELDS_FOR_SECONDS)
    return (Prediction.objects.filter(status=Prediction.Status.QUEUED, queued_at__gte=since)
            .exclude(arm=Prediction.Arm.SHADOW).exists())
