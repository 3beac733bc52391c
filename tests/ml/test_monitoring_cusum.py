"""The agreement CUSUM and Wilson intervals (pure code): run lengths by two methods agree
with each other and with the chart's behaviour on simulated streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.ml.monitoring import (
    BernoulliCusum,
    arl_siegmund,
    arl_simulate,
    cusum_design,
    cusum_run,
    threshold_for_arl,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_values():
    # Agresti & Coull / Newcombe (1998), 81 of 263: 0.2553-0.3662
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=5e-4)
    assert wilson_interval(0, 0) is None  # no reads: unknown, not 0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 3)


def test_wilson_interval_covers_about_95_percent():
    rng = np.random.default_rng(3)
    p, n, trials = 0.85, 40, 4000
    ks = rng.binomial(n, p, size=trials)
    covered = sum(lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in ks))
    assert 0.92 <= covered / trials <= 0.98


def test_cusum_statistic_by_hand():
    design = BernoulliCusum(p0=0.2, p1=0.4, h=1.5)
    up, down = math.log(2), math.log(0.6 / 0.8)
    result = cusum_run([1, 1, 0, 1, 0, 0, 0], design)
    expected, s = [], 0.0
    for x in [1, 1, 0, 1, 0, 0, 0]:
        s = max(0.0, s + (up if x else down))
        expected.append(s)
    assert result.statistic == pytest.approx(expected)
    assert result.alarm_index == 3  # 3 ln2 + ln 0.75 = 1.79 >= 1.5 at the 4th read
    with pytest.raises(ValueError, match="0 \\(agree\\) or 1"):
        cusum_run([0, 2], design)
    with pytest.raises(ValueError, match="p1 must exceed p0"):
        BernoulliCusum(p0=0.3, p1=0.2, h=1)


def test_siegmund_and_simulation_agree_on_the_out_of_control_arl():
    design = BernoulliCusum(p0=0.15, p1=0.25, h=2.7)
    approx = arl_siegmund(design, design.p1)
    simulated, se = arl_simulate(design, design.p1, runs=3000, seed=11)
    assert abs(approx - simulated) / simulated < 0.15, (approx, simulated, se)


def test_the_design_meets_its_in_control_arl_and_detects_a_10_point_drop_fast():
    design = cusum_design(baseline_agreement=0.85, drop=0.10, arl0=500)
    assert design.p0 == pytest.approx(0.15) and design.p1 == pytest.approx(0.25)
    arl0, se0 = arl_simulate(design, design.p0, runs=3000, seed=99)  # other streams than the tuning
    assert abs(arl0 - 500) < 4 * se0 + 25, (arl0, se0)
    arl1, _ = arl_simulate(design, design.p1, runs=3000, seed=99)
    assert arl1 < 100  # about 60 reads
    # Siegmund's Gaussian correction overstates the lattice walk's ARL0 (the reason to simulate)
    assert arl_siegmund(design, design.p0) > arl0
    assert threshold_for_arl(0.15, 0.25, 500, method="siegmund") < design.h


def test_a_stable_stream_rarely_alarms_and_a_drop_does():
    design = cusum_design(baseline_agreement=0.85, drop=0.10, arl0=500)
    rng = np.random.default_rng(5)
    stable_alarms = sum(cusum_run((rng.random(100) < 0.15).astype(int), design).alarm for _ in range(200))
    assert stable_alarms / 200 < 0.4  # P(alarm within 100 reads) ~ 1 - exp(-100/500) = 0.18
    dropped = sum(cusum_run((rng.random(300) < 0.25).astype(int), design).alarm for _ in range(100))
    assert dropped >= 95
