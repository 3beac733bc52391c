"""Degradation plots for the console's monitoring page: daily reader agreement with its
Wilson intervals, and the agreement CUSUM with its threshold. Inputs are plain sequences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from mlcore.ml.plots._svg import PALETTE, svg_figure


def daily_agreement_svg(series: dict[str, Sequence[tuple[date, float, float, float, int]]], *,
                        width_in: float = 7.0, height_in: float = 2.8) -> str:
    """One line per version: (day, rate, low, high, reads) points with their 95 % Wilson
    interval as error bars. No data gives empty, labelled axes."""
    with svg_figure(width_in, height_in) as (fig, out):
        ax = fig.subplots()
        for i, (version, points) in enumerate(sorted(series.items())):
            if not points:
                continue
            days = [p[0] for p in points]
            rate = [p[1] for p in points]
            err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            ax.errorbar(days, rate, yerr=err, marker="o", markersize=3, capsize=2,
                        color=PALETTE[i % len(PALETTE)], label=f"v{version}")
        ax.set_ylim(0.0, 1.02)
        ax.set_ylabel("agreement")
        ax.set_title("Daily agreement with confirmed readings (95 % Wilson intervals)", fontsize=10)
        if series:
            ax.legend(fontsize=8, loc="lower left")
        fig.autofmt_xdate()
    return out[0]


def cusum_svg(statistic: Sequence[float], *, threshold: float, alarm_index: int | None = None,
              title: str = "", width_in: float = 7.0, height_in: float = 2.4) -> str:
    """The CUSUM statistic per monitored read with its threshold h (and the first alarm)."""
    with svg_figure(width_in, height_in) as (fig, out):
        ax = fig.subplots()
        xs = list(range(1, len(statistic) + 1))
        if xs:
            ax.plot(xs, list(statistic), color=PALETTE[0], linewidth=1.2, label="CUSUM S")
        ax.axhline(threshold, color=PALETTE[1], linestyle="--", label=f"threshold h = {threshold:.2f}")
        if alarm_index is not None:
            ax.axvline(alarm_index + 1, color=PALETTE[7], linestyle=":", label=f"first alarm (read {alarm_index + 1})")
        ax.set_xlim(0, max(len(xs), 10))
        ax.set_ylim(0, max([threshold * 1.3, *statistic]) if statistic else threshold * 1.3)
        ax.set_xlabel("decisive reads after the baseline")
        ax.set_title(title or "Agreement CUSUM", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    return out[0]
