"""Drift over time: one panel per detector, p-value per check (log scale) with the alarm
level, one line per model version; alarms as filled markers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

from mlcore.ml.plots._svg import PALETTE, svg_figure

Point = tuple[datetime, float, bool]  # when, p-value, alarmed


def drift_history_svg(series: Mapping[str, Mapping[str, Sequence[Point]]], *, alpha: float,
                      titles: Mapping[str, str] | None = None) -> str:
    """``series[detector][version] = [(time, p, alarm), ...]`` -> an SVG with one panel per
    detector (in the mapping's order)."""
    detectors = list(series)
    if not detectors:
        raise ValueError("no drift series to plot")
    with svg_figure(7.0, 1.9 * len(detectors) + 0.4) as (fig, out):
        axes = fig.subplots(len(detectors), 1, sharex=True, squeeze=False)[:, 0]
        versions = sorted({v for d in detectors for v in series[d]}, key=str)
        colour = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(versions)}
        for ax, detector in zip(axes, detectors, strict=True):
            for version, points in series[detector].items():
                if not points:
                    continue
                xs = [p[0] for p in points]
                ys = [max(p[1], 1e-4) for p in points]
                ax.plot(xs, ys, "-", color=colour[version], lw=1.2, label=f"v{version}")
                alarms = [(x, y) for (x, y, (_, _, a)) in zip(xs, ys, points, strict=True) if a]
                ok = [(x, y) for (x, y, (_, _, a)) in zip(xs, ys, points, strict=True) if not a]
                if ok:
                    ax.plot(*zip(*ok, strict=True), "o", color=colour[version], ms=3, mfc="white")
                if alarms:
                    ax.plot(*zip(*alarms, strict=True), "o", color=colour[version], ms=5)
            ax.axhline(alpha, color="#D55E00", lw=0.8, ls="--", label=f"alarm: p < {alpha:g}")
            ax.set_yscale("log")
            ax.set_ylim(1e-4 * 0.8, 1.2)
            ax.set_ylabel("p-value")
            ax.set_title((titles or {}).get(detector, detector), fontsize=9, loc="left")
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=7, loc="lower left", ncols=min(4, len(versions) + 1))
        locator = AutoDateLocator()
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return out[0]
