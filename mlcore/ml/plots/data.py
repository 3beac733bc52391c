"""Data page figures: images per class and split, and the feedback area's growth.

Inputs are plain mappings (no Django, no store), so the page, a notebook and a test draw the
same figure from the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.ticker import MaxNLocator

from mlcore.ml.plots._svg import PALETTE, svg_figure


def split_class_bars_svg(
    counts: Mapping[str, Mapping[str, int]],
    *,
    classes: Sequence[str],
    splits: Sequence[str],
    labels: Mapping[str, str] | None = None,
) -> str:
    """Horizontal bars, one per class, stacked by split: how each class is divided.

    ``counts[split][class]``; ``labels`` maps class keys to display names."""
    labels = labels or {}
    names = [labels.get(c, c) for c in classes]
    height = max(1.6, 0.42 * len(classes) + 1.0)
    with svg_figure(7.5, height) as (fig, out):
        ax = fig.add_subplot()
        left = [0] * len(classes)
        for i, split in enumerate(splits):
            values = [int(counts.get(split, {}).get(c, 0)) for c in classes]
            if not any(values):
                continue
            ax.barh(names, values, left=left, color=PALETTE[i % len(PALETTE)], label=split,
                    edgecolor="white", linewidth=0.5)
            left = [a + b for a, b in zip(left, values, strict=True)]
        for y, total in enumerate(left):
            ax.text(total, y, f" {total}", va="center", fontsize=8)
        ax.invert_yaxis()  # first class on top, as in the table
        ax.set_xlabel("images")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, max(left or [0]) * 1.12 + 1)
        ax.spines[["top", "right"]].set_visible(False)
        if classes:
            ax.legend(loc="lower right", fontsize=8, frameon=False, title="split", title_fontsize=8)
    return out[0]


def feedback_growth_svg(
    per_day: Mapping[str, Mapping[str, int]],
    *,
    classes: Sequence[str],
    labels: Mapping[str, str] | None = None,
) -> str:
    """Confirmed corrections per day (bars stacked by class) and their running total (line).

    ``per_day[day][class]`` with ISO dates as days, in order (give empty days as ``{}`` for
    a true time axis)."""
    labels = labels or {}
    days = sorted(per_day)
    # positions, not the date strings: matplotlib would guess a categorical axis for them
    xs = list(range(len(days)))
    with svg_figure(7.5, 3.2) as (fig, out):
        ax = fig.add_subplot()
        bottom = [0] * len(days)
        for i, cls in enumerate(classes):
            values = [int(per_day[d].get(cls, 0)) for d in days]
            if not any(values):
                continue
            ax.bar(xs, values, bottom=bottom, color=PALETTE[i % len(PALETTE)],
                   label=labels.get(cls, cls), edgecolor="white", linewidth=0.5)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        ax.set_ylabel("corrections per day")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines[["top"]].set_visible(False)
        if days:
            running, total = [], 0
            for n in bottom:
                total += n
                running.append(total)
            twin = ax.twinx()
            twin.plot(xs, running, color="#000000", marker="o", markersize=3, linewidth=1.2,
                      label="running total")
            twin.set_ylabel("running total")
            twin.yaxis.set_major_locator(MaxNLocator(integer=True))
            twin.set_ylim(0, max(running) * 1.1 + 1)
            twin.spines[["top"]].set_visible(False)
            ax.set_ylim(0, max(bottom) * 1.1 + 0.5)
            # above the axes: inside, it would cover the tallest day
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=3, fontsize=7, frameon=False)
            step = max(1, len(days) // 20)  # at most ~20 date labels
            ax.set_xticks(xs[::step], days[::step], rotation=45, fontsize=7)
        else:
            ax.text(0.5, 0.5, "no confirmed corrections yet", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([])
    return out[0]
