"""Reads for the Prometheus collectors (radviewer.ops.collectors): training jobs by state,
the latest drift statistic per detector and version, and pipeline runs by state.

Drift reports and pipeline runs are read only where their models exist (``DriftReport``:
detector, statistic, p_value, model_version, created_at); before that, the functions say
"unavailable" (None), never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min

from mlcore import models as mlcore_models
from mlcore.models import TrainingJob


def training_job_states() -> dict[str, int]:
    """Training jobs per state, every state present (0 where none)."""
    counts = dict.fromkeys(TrainingJob.State.values, 0)
    for row in TrainingJob.objects.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


def training_last_failure_at() -> datetime | None:
    return TrainingJob.objects.filter(state=TrainingJob.State.FAILED).aggregate(
        at=Max("finished_at"))["at"]


def pipeline_run_states() -> dict[str, int] | None:
    """Continuous-training pipeline runs per state; None while no such model exists."""
    model = getattr(mlcore_models, "PipelineRun", None)
    if model is None:
        return None
    field = next((f for f in ("state", "status") if any(x.name == f for x in model._meta.fields)), None)
    if field is None:
        return None
    states = [c[0] for c in (model._meta.get_field(field).choices or [])]
    counts = dict.fromkeys(states, 0)
    for row in model.objects.values(field).annotate(n=Count("pk")):
        counts[row[field]] = row["n"]
    return counts


@dataclass(frozen=True)
class DriftReading:
    detector: str
    model_version: str
    statistic: float | None
    p_value: float | None
    created_at: datetime


def latest_drift_readings() -> list[DriftReading] | None:
    """The newest report per (detector, model version); None while drift reports do not exist
    (no ``DriftReport`` model): drift is then unavailable, not zero."""
    model = getattr(mlcore_models, "DriftReport", None)
    if model is None:
        return None
    out: list[DriftReading] = []
    latest = model.objects.values("detector", "model_version").annotate(last=Max("created_at"))
    for key in latest.order_by("detector", "model_version"):
        row = (model.objects.filter(detector=key["detector"], model_version=key["model_version"],
                                    created_at=key["last"]).order_by("-pk")
               .values_list("statistic", "p_value", "created_at").first())
        if row is not None:
            out.append(DriftReading(str(key["detector"]), str(key["model_version"]), *row))
    return out


def training_backlog() -> tuple[int, datetime | None]:
    """(training jobs queued, when the oldest of them was created)."""
    row = TrainingJob.objects.filter(state=TrainingJob.State.QUEUED).aggregate(n=Count("pk"), oldest=Min("created_at"))
    return row["n"] or 0, row["oldest"]
