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
