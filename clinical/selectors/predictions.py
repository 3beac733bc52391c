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
