"""Degradation from reader feedback: daily agreement per version and class with Wilson 95 %
intervals, and a Bernoulli CUSUM per version on its stream of decisive reads.

A read is decisive when the reader agreed with the AI or corrected it (``ReviewOutcome``
rows, written by ``review_create`` for UI reviews and API feedback alike); it agrees when the
confirmed class is the AI's top class. Each version's chart takes its baseline from its own
first ``AGREEMENT_CUSUM_BASELINE_READS`` reads and watches every read after them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from mlcore.ml.monitoring import BernoulliCusum, arl_simulate, cusum_design, cusum_run, wilson_interval
from mlcore.models import ReviewOutcome

DECISIVE = ("agree", "corrected")
ALL_CLASSES = "(all)"


@dataclass(frozen=True)
class DailyAgreement:
    model_version: str
    predicted_class: str  # ALL_CLASSES for the version as a whole
    day: date
    reads: int
    agreed: int
    rate: float
    low: float
    high: float


@dataclass
class CusumChart:
    model_version: str
    reads: int
    baseline_reads: int
    baseline_agreement: float | None
    design: BernoulliCusum | None
    statistic: list[float] = field(default_factory=list)  # S_t after each monitored read
    alarm_index: int | None = None  # first monitored read with S_t >= h
    arl0: float | None = None  # simulated in-control ARL (reads)
    arl1: float | None = None  # simulated ARL for the drop the chart is tuned to
    waiting_reason: str = ""

    @property
    def current(self) -> float:
        return self.statistic[-1] if self.statistic else 0.0

    @property
    def alarm(self) -> bool:
        """The chart is above its threshold now (a sustained drop, not an old one)."""
        return self.design is not None and self.current >= self.design.h


def _decisive(model_name: str | None):
    qs = ReviewOutcome.objects.filter(verdict__in=DECISIVE).exclude(confirmed_class="")
    return qs.filter(model_name=model_name) if model_name else qs


def daily_agreement(*, model_name: str | None = None, days: int = 30) -> list[DailyAgreement]:
    """Per version, per predicted class and for all classes: reads and agreement per day
    over the last ``days`` days, each with its Wilson 95 % interval."""
    since = timezone.now() - timedelta(days=days)
    rows = (_decisive(model_name).filter(created_at__gte=since)
            .annotate(day=TruncDate("created_at"))
            .values("model_version", "predicted_class", "day")
            .annotate(n=Count("pk"), k=Count("pk", filter=Q(confirmed_class=F("predicted_class"))))
            .order_by("model_version", "day", "predicted_class"))
    totals: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    out: list[DailyAgreement] = []
    for r in rows:
        out.append(_cell(r["model_version"], r["predicted_class"], r["day"], r["n"], r["k"]))
        t = totals[(r["model_version"], r["day"])]
        t[0] += r["n"]
        t[1] += r["k"]
    out += [_cell(v, ALL_CLASSES, d, n, k) for (v, d), (n, k) in totals.items()]
    return sorted(out, key=lambda a: (a.model_version, a.predicted_class, a.day))


def _cell(version: str, cls: str, day: date, n: int, k: int) -> DailyAgreement:
    low, high = wilson_interval(k, n)  # n >= 1: the row exists
    return DailyAgreement(version, cls, day, n, k, k / n, low, high)


@lru_cache(maxsize=128)
def _simulated_arls(design: BernoulliCusum) -> tuple[float, float]:
    """(in-control ARL, ARL at the drop) by simulation, 1,000 runs each; once per design."""
    return (arl_simulate(design, design.p0, runs=1000, seed=1)[0],
            arl_simulate(design, design.p1, runs=1000, seed=1)[0])


def agreement_cusum(*, model_name: str | None = None, simulate_arl: bool = True) -> list[CusumChart]:
    """One chart per version that has decisive reads, in read order. Before the baseline is
    complete the chart waits and says so (no statistic, no alarm)."""
    baseline_n = int(settings.AGREEMENT_CUSUM_BASELINE_READS)
    drop = settings.AGREEMENT_CUSUM_DROP_PERCENT / 100
    arl0 = float(settings.AGREEMENT_CUSUM_ARL0)
    streams: dict[str, list[int]] = defaultdict(list)
    for version, predicted, confirmed in (_decisive(model_name).order_by("created_at", "pk")
                                          .values_list("model_version", "predicted_class", "confirmed_class")):
        streams[version].append(0 if predicted == confirmed else 1)
    charts: list[CusumChart] = []
    for version, stream in sorted(streams.items()):
        if len(stream) < baseline_n:
            charts.append(CusumChart(
                model_version=version, reads=len(stream), baseline_reads=baseline_n, baseline_agreement=None,
                design=None, waiting_reason=f"{len(stream)} of the {baseline_n} reads that set the "
                                            "version's baseline so far; the chart starts after them"))
            continue
        baseline = 1 - sum(stream[:baseline_n]) / baseline_n
        design = cusum_design(baseline_agreement=baseline, drop=drop, arl0=arl0)
        result = cusum_run(stream[baseline_n:], design)
        chart = CusumChart(model_version=version, reads=len(stream), baseline_reads=baseline_n,
                           baseline_agreement=baseline, design=design, statistic=result.statistic,
                           alarm_index=result.alarm_index)
        if simulate_arl:
            chart.arl0, chart.arl1 = _simulated_arls(design)
        charts.append(chart)
    return charts
