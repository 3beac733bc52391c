"""A Bernoulli CUSUM on the stream of reader verdicts of one model version.

Each decisive read (the reader agreed, or corrected the AI's top class) is one Bernoulli
observation ``x = 1`` for a disagreement. In control the disagreement rate is ``p0`` (the
version's own baseline); the chart is tuned to detect a drop of ``delta`` in agreement, i.e.
a disagreement rate ``p1 = p0 + delta``. The statistic is the log-likelihood-ratio CUSUM

    S_0 = 0,  S_t = max(0, S_{t-1} + x_t ln(p1/p0) + (1 - x_t) ln((1 - p1)/(1 - p0)))

which alarms at the first ``t`` with ``S_t >= h``. Its average run lengths (reads until an
alarm) are computed two ways: Siegmund's corrected diffusion approximation (closed form) and
Monte Carlo simulation (exact up to sampling error); ``threshold_for_arl`` picks ``h`` for an
in-control ARL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# Siegmund's correction for the overshoot of a Gaussian random walk (rho = 0.583 x 2).
SIEGMUND_OVERSHOOT = 1.166


@dataclass(frozen=True)
class BernoulliCusum:
    p0: float  # in-control disagreement rate
    p1: float  # out-of-control disagreement rate the chart is tuned for
    h: float  # alarm threshold on S

    def __post_init__(self) -> None:
        if not 0 < self.p0 < 1 or not 0 < self.p1 < 1:
            raise ValueError(f"rates must be inside (0, 1), got p0={self.p0}, p1={self.p1}")
        if self.p1 <= self.p0:
            raise ValueError(f"p1 must exceed p0 (a rise in disagreement), got p0={self.p0}, p1={self.p1}")
        if self.h <= 0:
            raise ValueError(f"the threshold h must be positive, got {self.h}")

    @property
    def weights(self) -> tuple[float, float]:
        """(increment for a disagreement, increment for an agreement)."""
        return math.log(self.p1 / self.p0), math.log((1 - self.p1) / (1 - self.p0))

    def increment_moments(self, p: float) -> tuple[float, float]:
        """Mean and standard deviation of one increment when the true disagreement rate is p."""
        up, down = self.weights
        mean = p * up + (1 - p) * down
        sd = abs(up - down) * math.sqrt(p * (1 - p))
        return mean, sd


@dataclass(frozen=True)
class CusumResult:
    statistic: list[float]  # S_t after each read
    alarm_index: int | None  # the first read (0-based) at which S_t >= h
    design: BernoulliCusum
    extra: dict = field(default_factory=dict)

    @property
    def alarm(self) -> bool:
        return self.alarm_index is not None

    @property
    def last(self) -> float:
        return self.statistic[-1] if self.statistic else 0.0


def cusum_run(disagreements: list[int] | np.ndarray, design: BernoulliCusum) -> CusumResult:
    """The chart over a stream of 0/1 disagreements, in read order."""
    up, down = design.weights
    s = 0.0
    out: list[float] = []
    first = None
    for i, x in enumerate(disagreements):
        if x not in (0, 1, True, False):
            raise ValueError(f"observation {i} is {x!r}; the stream holds 0 (agree) or 1 (disagree)")
        s = max(0.0, s + (up if x else down))
        out.append(s)
        if first is None and s >= design.h:
            first = i
    return CusumResult(statistic=out, alarm_index=first, design=design)


def arl_siegmund(design: BernoulliCusum, p: float) -> float:
    """Siegmund's approximation of the average run length when the disagreement rate is p:
    ARL = (exp(-2 D b) + 2 D b - 1) / (2 D^2) with D = mean/sd of an increment and
    b = h/sd + 1.166; b^2 when the drift is zero."""
    mean, sd = design.increment_moments(p)
    if sd == 0:
        raise ValueError("a rate of 0 or 1 has no run length to approximate")
    d = mean / sd
    b = design.h / sd + SIEGMUND_OVERSHOOT
    if abs(d) < 1e-9:
        return b * b
    return (math.exp(-2 * d * b) + 2 * d * b - 1) / (2 * d * d)


def arl_simulate(design: BernoulliCusum, p: float, *, runs: int = 2000, seed: int = 0,
                 max_length: int = 1_000_000) -> tuple[float, float]:
    """Monte Carlo average run length (and its standard error) when the disagreement rate is
    p: ``runs`` independent streams, each until the first alarm (vectorised over runs)."""
    if runs < 2:
        raise ValueError("need at least 2 runs for a standard error")
    rng = np.random.default_rng(seed)
    up, down = design.weights
    s = np.zeros(runs)
    length = np.zeros(runs, dtype=np.int64)
    alive = np.ones(runs, dtype=bool)
    t = 0
    while alive.any():
        t += 1
        if t > max_length:
            raise RuntimeError(f"some runs passed {max_length} reads without an alarm")
        idx = np.flatnonzero(alive)
        x = rng.random(idx.size) < p
        s[idx] = np.maximum(0.0, s[idx] + np.where(x, up, down))
        hit = idx[s[idx] >= design.h]
        length[hit] = t
        alive[hit] = False
    return float(length.mean()), float(length.std(ddof=1) / math.sqrt(runs))


def threshold_for_arl(p0: float, p1: float, arl0: float, *, method: str = "simulate",
                      runs: int = 1000, seed: int = 0) -> float:
    """The threshold h whose in-control ARL equals ``arl0``, by bisection.

    ``method="siegmund"`` solves the closed form; ``"simulate"`` (default) solves the Monte
    Carlo ARL with common random numbers. The Bernoulli walk is a lattice walk, and
    Siegmund's Gaussian correction overstates its ARL0 by about a third (at p0 = 0.15,
    p1 = 0.25, h = 2.38: 500 by the formula, about 345 by simulation), so the chart uses the
    simulated threshold and states both figures."""
    if arl0 <= 1:
        raise ValueError(f"an in-control ARL must exceed 1 read, got {arl0}")
    if method not in ("siegmund", "simulate"):
        raise ValueError(f"unknown method {method!r}; accepted: siegmund, simulate")

    def arl(h: float) -> float:
        design = BernoulliCusum(p0, p1, h)
        if method == "siegmund":
            return arl_siegmund(design, p0)
        return arl_simulate(design, p0, runs=runs, seed=seed)[0]

    lo, hi = 1e-6, 1.0
    while arl(hi) < arl0:
        lo, hi = hi, hi * 2
        if hi > 1e3:
            raise ValueError(f"no threshold reaches an in-control ARL of {arl0}")
    for _ in range(60 if method == "siegmund" else 14):
        mid = (lo + hi) / 2
        if arl(mid) < arl0:
            lo = mid
        else:
            hi = mid
    return hi


def cusum_design(*, baseline_agreement: float, drop: float, arl0: float) -> BernoulliCusum:
    """The chart for a version whose readers agree ``baseline_agreement`` of the time, tuned to
    a drop of ``drop`` (0.10 = ten points) with an in-control ARL of ``arl0`` reads. The
    baseline is clipped into [0.01, 0.99] (a perfect baseline has no rate to rise from)."""
    if not 0 < drop < 1:
        raise ValueError(f"drop must be inside (0, 1), got {drop}")
    p0 = min(max(1.0 - baseline_agreement, 0.01), 0.99 - drop)
    p0 = round(p0, 3)  # a grid, so the (simulated) threshold is computed once per baseline
    return BernoulliCusum(p0=p0, p1=p0 + drop, h=_threshold(p0, round(drop, 4), float(arl0)))


@lru_cache(maxsize=256)
def _threshold(p0: float, drop: float, arl0: float) -> float:
    return threshold_for_arl(p0, p0 + drop, arl0)
