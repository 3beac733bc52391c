"""Reads for the Prometheus collectors (radviewer.ops.collectors): training jobs by state,
the latest drift statistic per detector and version, and pipeline runs by state.

A drift report whose check could not run (no reference, too few studies) has no statistic:
it is exported as unavailable, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min

from mlcore.models import DriftReport, PipelineRun, TrainingJob


def training_job_states() -> dict[str, int]:
    """Training jobs per state, every state present (0 where none)."""
    counts = dict.fromkeys(TrainingJob.State.values, 0)
    for row in TrainingJob.objects.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


def training_last_failure_at() -> datetime | None:
    return TrainingJob.objects.filter(state=TrainingJob.State.FAILED).aggregate(
        at=Max("finished_at"))["at"]


def pipeline_run_states() -> dict[str, int]:
    """Continuous-training pipeline runs per state, every state present (0 where none)."""
    counts = dict.fromkeys(PipelineRun.State.values, 0)
    for row in PipelineRun.objects.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


@dataclass(frozen=True)
class DriftReading:
    detector: str
    model_version: str
    statistic: float | None
    p_value: float | None
    created_at: datetime


def latest_drift_readings() -> list[DriftReading]:
    """The newest report per (detector, model version); its statistic and p-value are None
    when that check could not run (unavailable, not zero)."""
    out: list[DriftReading] = []
    latest = DriftReport.objects.values("detector", "model_version").annotate(last=Max("created_at"))
    for key in latest.order_by("detector", "model_version"):
        row = (DriftReport.objects.filter(detector=key["detector"], model_version=key["model_version"],
                                    created_at=key["last"]).order_by("-pk")
               .values_list("statistic", "p_value", "created_at").first())
        if row is not None:
            out.append(DriftReading(str(key["detector"]), str(key["model_version"]), *row))
    return out


def training_backlog() -> tuple[int, datetime | None]:
    """(training jobs queued, when the oldest of them was created)."""
    row = TrainingJob.objects.filter(state=TrainingJob.State.QUEUED).aggregate(n=Count("pk"), oldest=Min("created_at"))
    return row["n"] or 0, row["oldest"]
