"""The canary guard's sequential test and its operating characteristic.

The guard compares the canary's agreement with readers against production's on the reads
since the canary started (unpaired: each study is routed to one arm). With ``d`` the
observed difference (production minus canary) and ``I = 1 / Var(d)`` its statistical
information (each arm's variance from its own rate, one pseudo-read each way so an arm
where every read agreed stays finite),
``S = d * I`` is approximately Brownian motion with drift ``theta`` (the true drop) in
information time. Wald's SPRT of ``theta = 0`` against ``theta = delta`` (the drop to
detect) on that motion has the log-likelihood ratio

    llr = delta * S - delta**2 * I / 2       (Whitehead's normal approximation)

Roll back when ``llr >= log(1 / alpha)`` (a likelihood ratio is a martingale under H0, so by
Ville's inequality it ever reaches ``1 / alpha`` with probability at most ``alpha``, however
often it is looked at); accept the canary as no worse when
``llr <= log((1 - u) / (1 - u * alpha))`` with ``u = (1 + power) / 2`` (the lower boundary
that rolls a canary ``delta`` worse back with probability ``u`` in the end for the Brownian
approximation, so that it has done so with probability ``power`` within a finite number of
studies: the number the rollout page states); continue in between. No decision before ``min_reads`` reads in each arm.
``benchmarks/rollout_guard.py`` measures the real error rates with discrete reads.

The operating characteristic treats the llr as Brownian motion with drift
``delta * (theta - delta / 2)`` and variance ``delta**2`` per unit of information: the
probability of rolling back, the expected information at a decision (Wald), and the
distribution of the time to a rollback (the two-barrier first-passage series of Feller /
Cox and Miller), turned into studies with the information one study brings at canary
share ``s``: ``1 / (v_c / s + v_p / (1 - s))`` (``v = p * (1 - p)`` of each arm). Before the
minimum reads the test does not look: the llr at that point is normal, decided at once when
outside the boundaries, else the two-barrier problem starts from where it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

SERIES_TERMS = 4000


@dataclass(frozen=True)
class GuardDesign:
    alpha: float = 0.05  # false-rollback rate (an equal canary rolled back)
    power: float = 0.8  # probability of rolling back a canary ``drop`` worse
    drop: float = 0.10  # agreement drop to detect (0..1)
    min_reads: int = 30  # decisive reads per arm before any decision

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.alpha <= 0.2:
            problems.append(f"alpha must be in (0, 0.2], got {self.alpha}")
        if not 0.5 <= self.power < 1:
            problems.append(f"power must be in [0.5, 1), got {self.power}")
        if not 0 < self.drop < 1:
            problems.append(f"the drop to detect must be in (0, 1), got {self.drop}")
        if int(self.min_reads) != self.min_reads or self.min_reads < 1:
            problems.append(f"the minimum reads per arm must be a whole number >= 1, got {self.min_reads}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def upper(self) -> float:
        return math.log(1 / self.alpha)

    @property
    def ultimate_power(self) -> float:
        """The probability of ever rolling back a canary ``drop`` worse: halfway from
        ``power`` to 1, so that ``power`` is reached within a finite number of studies (the
        figure the rollout page states) rather than only in the limit."""
        return 1 - (1 - self.power) / 2

    @property
    def lower(self) -> float:
        # For the Brownian approximation, a canary exactly ``drop`` worse is rolled back with
        # probability ``ultimate_power`` given the upper boundary log(1 / alpha).
        u = self.ultimate_power
        return math.log((1 - u) / (1 - u * self.alpha))


@dataclass(frozen=True)
class SprtState:
    n_canary: int
    n_production: int
    agree_canary: int
    agree_production: int
    rate_canary: float | None
    rate_production: float | None
    difference: float | None  # production - canary
    information: float
    llr: float
    upper: float
    lower: float
    decision: str  # waiting | continue | rollback | accept
    needs: int  # reads per arm still missing before a decision is possible

    def to_dict(self) -> dict:
        return asdict(self)


def sprt_llr(k_c, n_c, k_p, n_p, drop: float):
    """The llr and the information on counts (numbers or numpy arrays of cumulative counts,
    each arm with >= 1 read): 1 / Var(production rate - canary rate), each arm's variance
    from its own rate with one pseudo-read each way (an arm where every read agreed keeps a
    finite information)."""
    p_c, p_p = (k_c + 1) / (n_c + 2), (k_p + 1) / (n_p + 2)
    info = 1.0 / (p_c * (1 - p_c) / n_c + p_p * (1 - p_p) / n_p)
    diff = k_p / n_p - k_c / n_c
    return drop * diff * info - drop ** 2 * info / 2, info


def sprt_state(*, agree_canary: int, n_canary: int, agree_production: int, n_production: int,
               design: GuardDesign) -> SprtState:
    """The guard's statistic and decision on cumulative counts (agreeing reads, reads)."""
    for k, n, arm in ((agree_canary, n_canary, "canary"), (agree_production, n_production, "production")):
        if n < 0 or k < 0 or k > n:
            raise ValueError(f"{arm}: need 0 <= agreeing reads <= reads, got {k} of {n}")
    rate_c = agree_canary / n_canary if n_canary else None
    rate_p = agree_production / n_production if n_production else None
    needs = max(0, design.min_reads - min(n_canary, n_production))
    if n_canary == 0 or n_production == 0:
        return SprtState(n_canary, n_production, agree_canary, agree_production, rate_c, rate_p, None, 0.0, 0.0,
                         design.upper, design.lower, "waiting", needs)
    diff = rate_p - rate_c
    llr, info = sprt_llr(agree_canary, n_canary, agree_production, n_production, design.drop)
    if needs:
        decision = "waiting"
    elif llr >= design.upper:
        decision = "rollback"
    elif llr <= design.lower:
        decision = "accept"
    else:
        decision = "continue"
    return SprtState(n_canary, n_production, agree_canary, agree_production, rate_c, rate_p, diff, info, llr,
                     design.upper, design.lower, decision, needs)


def sprt_path(outcomes: list[tuple[str, bool]], design: GuardDesign) -> list[SprtState]:
    """The state after each read of ``outcomes`` (arm, agreed) in time order."""
    k = {"canary": 0, "production": 0}
    n = {"canary": 0, "production": 0}
    path = []
    for arm, agreed in outcomes:
        if arm not in n:
            raise ValueError(f"unknown arm {arm!r}: canary or production")
        n[arm] += 1
        k[arm] += bool(agreed)
        path.append(sprt_state(agree_canary=k["canary"], n_canary=n["canary"], agree_production=k["production"],
                               n_production=n["production"], design=design))
    return path


# -- operating characteristic ---------------------------------------------------------------------

def _drift(theta: float, delta: float) -> tuple[float, float]:
    return delta * (theta - delta / 2), delta ** 2


def _scale(x: np.ndarray | float, mu: float, var: float) -> np.ndarray:
    """The scale function exp(-2 mu x / var), computed as a log to stay finite."""
    return -2 * mu * np.asarray(x, dtype=float) / var


def _p_upper_from(x: np.ndarray | float, mu: float, var: float, a: float, b: float) -> np.ndarray:
    """P(Brownian motion with drift ``mu``, variance ``var`` from ``x`` in (b, a) reaches
    ``a`` before ``b``): (s(x) - s(b)) / (s(a) - s(b)) with s the scale function."""
    x = np.asarray(x, dtype=float)
    if abs(mu) < 1e-12:
        return (x - b) / (a - b)
    lx, la, lb = _scale(x, mu, var), float(_scale(a, mu, var)), float(_scale(b, mu, var))
    top = np.maximum(np.maximum(lx, la), lb)
    num = np.exp(lx - top) - np.exp(lb - top)
    den = np.exp(la - top) - np.exp(lb - top)
    return np.clip(num / den, 0.0, 1.0)


def _p_upper(mu: float, var: float, a: float, b: float) -> float:
    return float(_p_upper_from(0.0, mu, var, a, b))


def _expected_time_from(x: np.ndarray | float, mu: float, var: float, a: float, b: float) -> np.ndarray:
    """Expected time to leave (b, a) from ``x``."""
    x = np.asarray(x, dtype=float)
    if abs(mu) < 1e-12:
        return (a - x) * (x - b) / var
    p = _p_upper_from(x, mu, var, a, b)
    return (p * (a - x) + (1 - p) * (b - x)) / mu


def _expected_time(mu: float, var: float, a: float, b: float) -> float:
    """Wald's expected information at a decision, from 0."""
    return float(_expected_time_from(0.0, mu, var, a, b))


def _p_upper_by_from(t: float, x: np.ndarray, mu: float, var: float, a: float, b: float,
                     terms: int = SERIES_TERMS) -> np.ndarray:
    """P(from ``x``, reach ``a`` before ``b`` and by time ``t``): the first-passage density at
    the upper barrier is ``pi*var/w**2 * exp(mu*(a-x)/var - mu**2*s/(2*var)) *
    sum_k k*sin(k*pi*(a-x)/w) * exp(-k**2*pi**2*var*s/(2*w**2))`` (``w = a - b``); integrated
    term by term and written as P(upper) minus the part after ``t``."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    if t <= 0:
        return np.zeros_like(x)
    w = a - b
    k = np.arange(1, terms + 1, dtype=float)
    c = mu ** 2 / (2 * var) + (k * math.pi) ** 2 * var / (2 * w ** 2)
    weights = k * np.exp(-c * t) / c
    sines = np.sin(np.outer(a - x, k) * math.pi / w)
    tail = math.pi * var / w ** 2 * np.exp(mu * (a - x) / var) * (sines @ weights)
    return np.clip(_p_upper_from(x, mu, var, a, b) - tail, 0.0, 1.0)


def p_rollback_by(t: float, mu: float, var: float, a: float, b: float, terms: int = SERIES_TERMS) -> float:
    """P(the llr, from 0, reaches ``a`` before ``b`` and by information ``t``)."""
    return float(_p_upper_by_from(t, np.array([0.0]), mu, var, a, b, terms)[0])


class _Delayed:
    """The llr's law when the test first looks at information ``t0`` (the minimum reads):
    normal there; decided at once outside (b, a), else the two-barrier problem from x."""

    def __init__(self, t0: float, mu: float, var: float, a: float, b: float, points: int = 400) -> None:
        self.t0, self.mu, self.var, self.a, self.b = t0, mu, var, a, b
        if t0 <= 0:
            self.x, self.w, self.p_up0, self.p_down0 = np.array([0.0]), np.array([1.0]), 0.0, 0.0
            return
        mean, sd = mu * t0, math.sqrt(var * t0)
        edges = np.linspace(b, a, points + 1)
        cdf = stats.norm.cdf(edges, mean, sd)
        self.x = (edges[:-1] + edges[1:]) / 2
        self.w = np.diff(cdf)
        self.p_up0 = float(stats.norm.sf(a, mean, sd))
        self.p_down0 = float(stats.norm.cdf(b, mean, sd))

    def p_upper(self) -> float:
        return self.p_up0 + float(self.w @ _p_upper_from(self.x, self.mu, self.var, self.a, self.b))

    def expected(self) -> float:
        return self.t0 + float(self.w @ _expected_time_from(self.x, self.mu, self.var, self.a, self.b))

    def p_upper_by(self, t: float) -> float:
        if t < self.t0:
            return 0.0
        rest = _p_upper_by_from(t - self.t0, self.x, self.mu, self.var, self.a, self.b)
        return self.p_up0 + float(self.w @ rest)


@dataclass(frozen=True)
class OperatingPoint:
    drop: float  # true agreement drop of the canary (points / 100)
    share: float  # canary share of studies
    daily_studies: float
    baseline: float  # production agreement
    p_rollback: float
    expected_studies: float  # to a decision (either way)
    expected_days: float | None
    # Studies (days) by which the guard has rolled back with probability ``target``; None
    # when it never reaches that probability.
    target: float
    studies_for_target: float | None
    days_for_target: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def operating_characteristic(*, drop: float, share: float, daily_studies: float, baseline: float,
                             design: GuardDesign, target: float | None = None) -> OperatingPoint:
    """How the guard behaves on a canary ``drop`` worse than production (agreement
    ``baseline``) at canary ``share`` of ``daily_studies`` read studies a day."""
    if not 0 < share < 1:
        raise ValueError(f"the canary share must be in (0, 1), got {share}")
    if not 0 < baseline < 1:
        raise ValueError(f"production's agreement must be in (0, 1), got {baseline}")
    if not baseline - 1 < drop < baseline:
        raise ValueError(f"the drop must be in ({baseline - 1:.3f}, {baseline:.3f}), got {drop}")
    if daily_studies < 0:
        raise ValueError(f"the daily volume must be >= 0, got {daily_studies}")
    target = design.power if target is None else target
    canary = baseline - drop
    per_study = 1.0 / (canary * (1 - canary) / share + baseline * (1 - baseline) / (1 - share))
    t0 = design.min_reads / min(share, 1 - share) * per_study
    mu, var = _drift(drop, design.drop)
    law = _Delayed(t0, mu, var, design.upper, design.lower)
    p_up = law.p_upper()
    expected = law.expected() / per_study
    for_target = None
    if p_up > target + 1e-9:
        hi = max(2 * t0, law.expected(), 1.0)
        while law.p_upper_by(hi) < target:
            hi *= 2
        if law.p_upper_by(t0) >= target:
            t = t0
        else:
            t = optimize.brentq(lambda s: law.p_upper_by(s) - target, t0, hi, xtol=1e-4)
        for_target = t / per_study

    def days(n: float | None) -> float | None:
        return n / daily_studies if n is not None and daily_studies > 0 else None

    return OperatingPoint(drop, share, daily_studies, baseline, p_up, expected, days(expected), target,
                          for_target, days(for_target))


# -- fixed-sample sizes (the comparison of designs in the simulation) ------------------------------

def fixed_sample_unpaired(*, baseline: float, drop: float, share: float, alpha: float = 0.05,
                          power: float = 0.8) -> float:
    """Studies for a one-sided two-proportion z test of production vs a canary ``drop`` worse,
    the canary getting ``share`` of the studies."""
    p1, p2 = baseline, baseline - drop
    mean = (1 - share) * p1 + share * p2
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    s0 = math.sqrt(mean * (1 - mean) * (1 / share + 1 / (1 - share)))
    s1 = math.sqrt(p1 * (1 - p1) / (1 - share) + p2 * (1 - p2) / share)
    return (za * s0 + zb * s1) ** 2 / drop ** 2


def fixed_sample_paired(*, discordant: float, drop: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Studies for a one-sided McNemar test (Connor 1987) when both versions read every study
    and a share ``discordant`` of the studies has exactly one of them right."""
    if not 0 < drop <= discordant <= 1:
        raise ValueError(f"need 0 < drop <= discordant share <= 1, got drop {drop}, discordant {discordant}")
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    return (za * math.sqrt(discordant) + zb * math.sqrt(discordant - drop ** 2)) ** 2 / drop ** 2
