"""Wilson score interval for a binomial proportion (agreement of k in n reads)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, *, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` successes in ``n`` trials; None when ``n == 0``
    (no reads: the rate is unknown, not 0). Unlike the Wald interval it stays inside [0, 1]
    and keeps its coverage near 0 and 1, where agreement rates live."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # exact bounds at the edges (the formula gives 1 - 1e-16 there)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high
