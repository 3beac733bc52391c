"""Text forms of figures shared by the pages, the gate's verdicts and the reports (no
dependencies: web processes import it without torch)."""

from __future__ import annotations

from collections.abc import Sequence


def format_interval(cell: Sequence[float | None] | None, *, digits: int = 3, signed: bool = False,
                    missing: str = "–") -> str:
    """``[point, low, high]`` as ``0.910 [0.850, 0.960]`` (``signed``: ``+0.012 [-0.010,
    +0.031]`` for a difference); only a point when the interval is undefined; ``missing``
    when the point is."""
    if not cell or cell[0] is None:
        return missing
    spec = f"{'+' if signed else ''}.{digits}f"
    if len(cell) < 3 or cell[1] is None or cell[2] is None:
        return format(cell[0], spec)
    return f"{format(cell[0], spec)} [{format(cell[1], spec)}, {format(cell[2], spec)}]"
