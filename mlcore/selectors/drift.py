"""Drift reads for the console (and the metrics exporter): latest reports per version and
detector, the history for plots, and how many studies each version has observed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, QuerySet

from mlcore.models import DriftObservation, DriftReport

DETECTOR_NAMES = {"mmd": "MMD (embedding, permutation p)",
                  "ks": "KS per feature (Bonferroni)",
                  "label_shift": "Label shift (chi-square on predicted classes)"}


def drift_reports(*, name: str, version: str | None = None, limit: int = 50) -> QuerySet[DriftReport]:
    qs = DriftReport.objects.filter(name=name)
    if version is not None:
        qs = qs.filter(model_version=version)
    return qs.order_by("-created_at", "-id")[:limit]


def drift_latest(*, name: str) -> list[DriftReport]:
    """The newest report of every (version, detector), newest version first."""
    newest = (DriftReport.objects.filter(name=name).values("model_version", "detector")
              .annotate(last=Max("id")).values_list("last", flat=True))
    return list(DriftReport.objects.filter(pk__in=list(newest))
                .order_by("-model_version", "detector"))


@dataclass(frozen=True)
class DriftPoint:
    at: datetime
    p_value: float
    statistic: float
    alarm: bool


def drift_history(*, name: str, limit: int = 500) -> dict[tuple[str, str], list[DriftPoint]]:
    """Tested reports (status ok) per (version, detector), oldest first, for the plots."""
    rows = (DriftReport.objects.filter(name=name, status=DriftReport.Status.OK)
            .order_by("-created_at", "-id")
            .values_list("model_version", "detector", "created_at", "p_value", "statistic", "alarm")
            [:limit])
    out: dict[tuple[str, str], list[DriftPoint]] = {}
    for version, detector, at, p, stat, alarm in reversed(list(rows)):
        out.setdefault((version, detector), []).append(DriftPoint(at, float(p), float(stat), alarm))
    return out


def drift_observation_counts(*, name: str) -> dict[str, int]:
    rows = (DriftObservation.objects.filter(model_name=name).values("model_version")
            .annotate(n=Count("id")).values_list("model_version", "n"))
    return dict(rows)
