"""Reads for the Prometheus collectors (radviewer.ops.collectors): work waiting for a worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min

from clinical.models import Prediction


@dataclass(frozen=True)
class Backlog:
    waiting: int
    oldest: datetime | None  # when the longest-waiting one was queued; None when none waits


def inference_backlog() -> Backlog:
    """Predictions queued and not yet started: the inference queue's work, counted from the rows
    (the same on every broker, and it includes work whose message was lost)."""
    row = Prediction.objects.filter(status=Prediction.Status.QUEUED).aggregate(
        n=Count("pk"), oldest=Min("queued_at"), oldest_created=Min("created_at"))
    return Backlog(row["n"] or 0, row["oldest"] or row["oldest_created"])
