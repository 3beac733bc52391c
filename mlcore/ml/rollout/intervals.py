"""Agreement proportions and their comparisons, with 95 % intervals.

- one proportion: Wilson score interval (Newcombe 1998a, method 3);
- two independent proportions (canary vs production): difference with Newcombe's hybrid
  score interval (Newcombe 1998a, method 10);
- two paired proportions (shadow vs production on the same studies): McNemar's test on the
  discordant pairs (exact binomial when there are fewer than 25, else chi-square with
  continuity correction) and the difference with Newcombe's paired score interval
  (Newcombe 1998b, method 10, with the continuity-corrected phi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

Z95 = 1.959963984540054
EXACT_BELOW = 25  # discordant pairs: exact binomial below this, chi-square from here


def _check_counts(k: int, n: int, what: str = "count") -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"{what}: need 0 <= k <= n, got k={k}, n={n}")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n``; (0, 1) when ``n`` is 0."""
    _check_counts(k, n)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Proportion:
    k: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {"k": self.k, "n": self.n, "rate": self.rate, "low": lo if self.n else None,
                "high": hi if self.n else None}


@dataclass(frozen=True)
class ProportionDifference:
    """``a - b`` with its 95 % interval; ``None`` where an arm has no reads."""

    a: Proportion
    b: Proportion
    difference: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "difference": self.difference,
                "low": self.low, "high": self.high}


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> ProportionDifference:
    """``k1/n1 - k2/n2`` (independent samples) with Newcombe's hybrid score interval."""
    _check_counts(k1, n1, "first sample")
    _check_counts(k2, n2, "second sample")
    a, b = Proportion(k1, n1), Proportion(k2, n2)
    if n1 == 0 or n2 == 0:
        return ProportionDifference(a, b, None, None, None)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return ProportionDifference(a, b, d, max(-1.0, low), min(1.0, high))


def mcnemar_p(b: int, c: int) -> tuple[float, str]:
    """Two-sided p of McNemar's test on the discordant pairs ``b`` (only the first right) and
    ``c`` (only the second right), and the method used."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    m = b + c
    if m == 0:
        return 1.0, "no discordant pairs"
    if m < EXACT_BELOW:
        p = 2 * stats.binom.cdf(min(b, c), m, 0.5)
        return min(1.0, float(p)), "exact binomial"
    chi2 = (abs(b - c) - 1) ** 2 / m
    return float(stats.chi2.sf(chi2, 1)), "chi-square, continuity-corrected"


@dataclass(frozen=True)
class PairedComparison:
    """Two versions read on the same ``n`` studies: ``both`` right, ``only_a``, ``only_b``,
    ``neither``; the difference ``rate_a - rate_b`` with its interval and McNemar's p."""

    both: int
    only_a: int
    only_b: int
    neither: int
    difference: float | None
    low: float | None
    high: float | None
    p_value: float
    method: str

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def a(self) -> Proportion:
        return Proportion(self.both + self.only_a, self.n)

    @property
    def b(self) -> Proportion:
        return Proportion(self.both + self.only_b, self.n)

    def to_dict(self) -> dict:
        return {"n": self.n, "both": self.both, "only_a": self.only_a, "only_b": self.only_b,
                "neither": self.neither, "a": self.a.to_dict(), "b": self.b.to_dict(),
                "difference": self.difference, "low": self.low, "high": self.high,
                "p_value": self.p_value, "method": self.method}


def paired_comparison(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> PairedComparison:
    """Paired difference of two agreement rates (Newcombe 1998b method 10) and McNemar."""
    cells = (both, only_a, only_b, neither)
    if any(x < 0 for x in cells):
        raise ValueError(f"paired counts must be >= 0, got {cells}")
    n = sum(cells)
    p_value, method = mcnemar_p(only_a, only_b)
    if n == 0:
        return PairedComparison(*cells, None, None, None, p_value, method)
    a, b, c, d = cells
    pa, pb = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    if denom == 0:
        phi = 0.0
    else:
        cross = a * d - b * c
        # Newcombe's continuity-corrected phi: shrink a positive association by n/2.
        phi = (max(cross - n / 2, 0.0) if cross > 0 else cross) / math.sqrt(denom)
    diff = pa - pb
    dl = (pa - l1) ** 2 - 2 * phi * (pa - l1) * (u2 - pb) + (u2 - pb) ** 2
    du = (u1 - pa) ** 2 - 2 * phi * (u1 - pa) * (pb - l2) + (pb - l2) ** 2
    low = diff - math.sqrt(max(dl, 0.0))
    high = diff + math.sqrt(max(du, 0.0))
    return PairedComparison(*cells, diff, max(-1.0, low), min(1.0, high), p_value, method)
