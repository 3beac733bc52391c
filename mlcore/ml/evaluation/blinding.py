"""Automation bias from blinded reads (plain Python; no Django).

Agreement of the AI's top class with the reader's verdict, split by whether the reader saw
the AI (AI-shown reads) or not (blinded reads, a random share chosen at ingest). The
difference shown - blinded is the **confirmation inflation**: how much agreement the AI's
presence adds. Blinded agreement is the unbiased estimate of the AI's accuracy against
unprompted readers (the blinded studies are a random sample of all studies).

Intervals: Wilson score for a proportion, Newcombe's hybrid score interval (method 10) for
the difference of two independent proportions; both 95 %, both defined for small n.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> list[float | None]:
    """``[p, low, high]`` of k successes in n; ``[None] * 3`` when n is 0."""
    if n <= 0:
        return [None, None, None]
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [p, max(0.0, centre - half), min(1.0, centre + half)]


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> list[float | None]:
    """``[p1 - p2, low, high]`` (Newcombe 1998, method 10); ``[None] * 3`` if either n is 0."""
    if n1 <= 0 or n2 <= 0:
        return [None, None, None]
    p1, l1, u1 = wilson(k1, n1, z)
    p2, l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return [d, max(-1.0, low), min(1.0, high)]


def _cell(agreed: int, n: int) -> dict[str, Any]:
    return {"n": n, "agreed": agreed, "agreement": wilson(agreed, n)}


def _compare(counts: dict[bool, list[int]]) -> dict[str, Any]:
    (nb, kb), (ns, ks) = counts[True], counts[False]
    return {"blinded": _cell(kb, nb), "shown": _cell(ks, ns), "inflation": newcombe_difference(ks, ns, kb, nb)}


def automation_bias(rows: Iterable[tuple[str, str, bool, bool]]) -> list[dict[str, Any]]:
    """``rows``: (model version, AI top class, blinded?, reader agreed?) per decisive read.

    Per version (sorted): ``{"version", "overall": {...}, "per_class": {class: {...}}}`` where
    each ``{...}`` is ``{"blinded": {"n", "agreed", "agreement": [p, lo, hi]}, "shown": {...},
    "inflation": [shown - blinded, lo, hi]}``; ``overall["blinded"]["agreement"]`` is the
    unbiased accuracy estimate.
    """
    per: dict[str, dict[str, dict[bool, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: {True: [0, 0], False: [0, 0]}))
    for version, cls, blinded, agreed in rows:
        for key in ("*", cls):
            cell = per[version][key][bool(blinded)]
            cell[0] += 1
            cell[1] += bool(agreed)
    out = []
    for version in sorted(per, key=lambda v: (len(v), v)):
        classes = per[version]
        out.append({"version": version, "overall": _compare(classes["*"]),
                    "per_class": {c: _compare(classes[c]) for c in sorted(classes) if c != "*"}})
    return out
