"""The canary guard's boundary plot: the log-likelihood ratio after each read against the
rollback and accept boundaries, reads (both arms) on x."""

from __future__ import annotations

from collections.abc import Sequence

from mlcore.ml.plots._svg import PALETTE, svg_figure

MAX_POINTS = 2000  # a longer path is thinned (every k-th read and the last) to keep the SVG small


def guard_boundary_svg(*, llr: Sequence[float], ready: Sequence[bool], upper: float, lower: float,
                       title: str = "") -> str:
    """``llr[i]`` after read ``i + 1``; ``ready[i]``: both arms had their minimum reads (the
    test decides only from there; earlier points are drawn faded)."""
    reads = list(range(1, len(llr) + 1))
    if len(reads) > MAX_POINTS:
        step = -(-len(reads) // MAX_POINTS)
        keep = list(range(0, len(reads), step)) + ([len(reads) - 1] if (len(reads) - 1) % step else [])
        reads, llr, ready = [reads[i] for i in keep], [llr[i] for i in keep], [ready[i] for i in keep]
    with svg_figure(6.4, 3.4) as (fig, out):
        ax = fig.add_subplot()
        ax.axhline(upper, color=PALETTE[1], linewidth=1.2, linestyle="--", label=f"roll back ({upper:.2f})")
        ax.axhline(lower, color=PALETTE[2], linewidth=1.2, linestyle="--", label=f"accept ({lower:.2f})")
        ax.axhline(0, color="#999999", linewidth=0.6)
        if reads:
            early = [v if not r else None for v, r in zip(llr, ready, strict=True)]
            late = [v if r else None for v, r in zip(llr, ready, strict=True)]
            if any(v is not None for v in early):
                ax.plot(reads, [float("nan") if v is None else v for v in early], color=PALETTE[0], alpha=0.35,
                        linewidth=1.2, label="before the minimum reads")
            if any(v is not None for v in late):
                ax.plot(reads, [float("nan") if v is None else v for v in late], color=PALETTE[0], linewidth=1.6,
                        label="log-likelihood ratio")
        else:
            ax.text(0.5, 0.5, "no reads of the canary or production yet", ha="center", va="center",
                    transform=ax.transAxes, color="#555555")
        ax.set_xlabel("reads (canary and production)")
        ax.set_ylabel("log-likelihood ratio")
        if title:
            ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="best")
    return out[0]
