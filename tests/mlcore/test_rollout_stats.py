"""The rollout statistics against published and hand-computed values (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.ml.rollout import (
    GuardDesign,
    fixed_sample_paired,
    fixed_sample_unpaired,
    mcnemar_p,
    newcombe_difference,
    operating_characteristic,
    paired_comparison,
    sprt_state,
    wilson_interval,
)
from mlcore.ml.rollout.sequential import _drift, _expected_time, _p_upper, p_rollback_by, sprt_llr, sprt_path


def close(pair, expected, tol=5e-5):
    return all(abs(a - b) <= tol for a, b in zip(pair, expected, strict=True))


def test_wilson_matches_newcombe_1998_table_i():
    # Newcombe (1998), Stat Med 17:857, single proportion, method 3 (Wilson score).
    assert close(wilson_interval(81, 263), (0.2553, 0.3662))
    assert close(wilson_interval(15, 148), (0.0624, 0.1605))
    assert close(wilson_interval(0, 20), (0.0, 0.1611))
    assert close(wilson_interval(1, 29), (0.0061, 0.1718))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_newcombe_unpaired_difference_matches_newcombe_1998_table_ii():
    # Newcombe (1998), Stat Med 17:873, method 10 (hybrid score).
    d = newcombe_difference(56, 70, 48, 80)
    assert d.difference == pytest.approx(0.2) and close((d.low, d.high), (0.0524, 0.3339))
    d = newcombe_difference(9, 10, 3, 10)
    assert close((d.low, d.high), (0.1705, 0.8090))
    d = newcombe_difference(5, 56, 0, 29)
    assert close((d.low, d.high), (-0.0381, 0.1926))
    empty = newcombe_difference(0, 0, 3, 10)
    assert empty.difference is None and empty.low is None


def test_paired_difference_matches_fagerland_lydersen_laake():
    # Fagerland, Lydersen & Laake, "Statistical analysis of contingency tables" (2017), chapter 8:
    # Newcombe square-and-add on the table [[59, 6], [16, 80]] -> -0.0621 (-0.1186 to -0.0046),
    # McNemar exact conditional p = 0.0525; and Bentur et al. [[1, 1], [7, 12]] -> -0.2857
    # (-0.5069 to -0.0256).
    c = paired_comparison(59, 6, 16, 80)
    assert c.n == 161 and c.difference == pytest.approx(-10 / 161)
    assert close((c.low, c.high), (-0.1186, -0.0046))
    assert c.p_value == pytest.approx(0.0525, abs=5e-5) and c.method == "exact binomial"
    c = paired_comparison(1, 1, 7, 12)
    assert close((c.low, c.high), (-0.5069, -0.0256))
    assert c.a.k == 2 and c.b.k == 8
    assert paired_comparison(0, 0, 0, 0).difference is None
    with pytest.raises(ValueError):
        paired_comparison(1, -1, 0, 0)


def test_mcnemar_exact_below_25_discordant_and_chi_square_from_there():
    # b=1, c=9: 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024.
    assert mcnemar_p(1, 9) == (pytest.approx(22 / 1024), "exact binomial")
    assert mcnemar_p(9, 1)[0] == pytest.approx(22 / 1024)
    # b=10, c=25 (35 >= 25): (|10 - 25| - 1)^2 / 35 = 5.6 on 1 df -> p = erfc(sqrt(5.6 / 2)).
    p, method = mcnemar_p(10, 25)
    assert method.startswith("chi-square") and p == pytest.approx(math.erfc(math.sqrt(2.8)), rel=1e-9)
    # 24 discordant pairs are still exact: 2 * P(X <= 12 | n=24) capped at 1.
    assert mcnemar_p(12, 12) == (1.0, "exact binomial")
    assert mcnemar_p(0, 0) == (1.0, "no discordant pairs")


def test_design_boundaries_and_validation():
    d = GuardDesign()
    assert d.upper == pytest.approx(math.log(20))
    assert d.ultimate_power == pytest.approx(0.9)
    assert d.lower == pytest.approx(math.log(0.1 / (1 - 0.9 * 0.05)))
    # Brownian approximation: a 10-point drop rolled back 90 % of the time in the end; an equal
    # canary (llr drift -delta^2/2, variance delta^2: scale exp(x)) with probability
    # (1 - e^b) / (e^a - e^b) <= alpha.
    assert _p_upper(*_drift(0.1, 0.1), d.upper, d.lower) == pytest.approx(0.90)
    expected = (1 - math.exp(d.lower)) / (math.exp(d.upper) - math.exp(d.lower))
    assert _p_upper(*_drift(0.0, 0.1), d.upper, d.lower) == pytest.approx(expected)
    assert expected <= 0.05
    for bad in ({"alpha": 0.0}, {"alpha": 0.3}, {"power": 1.0}, {"drop": 0.0}, {"min_reads": 0},
                {"min_reads": 2.5}):
        with pytest.raises(ValueError):
            GuardDesign(**bad)


def test_sprt_waits_then_decides_each_way():
    d = GuardDesign(min_reads=30)
    waiting = sprt_state(agree_canary=10, n_canary=12, agree_production=40, n_production=45, design=d)
    assert waiting.decision == "waiting" and waiting.needs == 18
    # llr by hand: rates (k+1)/(n+2) per arm for the information.
    llr, info = sprt_llr(30, 60, 54, 60, 0.1)
    pc, pp = 31 / 62, 55 / 62
    assert info == pytest.approx(1 / (pc * (1 - pc) / 60 + pp * (1 - pp) / 60))
    assert llr == pytest.approx(0.1 * 0.4 * info - 0.005 * info)
    worse = sprt_state(agree_canary=30, n_canary=60, agree_production=54, n_production=60, design=d)
    assert worse.decision == "rollback" and worse.llr >= d.upper and worse.difference == pytest.approx(0.4)
    equal = sprt_state(agree_canary=450, n_canary=500, agree_production=450, n_production=500, design=d)
    assert equal.decision == "accept" and equal.llr <= d.lower
    middle = sprt_state(agree_canary=54, n_canary=60, agree_production=54, n_production=60, design=d)
    assert middle.decision == "continue"
    with pytest.raises(ValueError):
        sprt_state(agree_canary=5, n_canary=4, agree_production=1, n_production=1, design=d)
    path = sprt_path([("production", True), ("canary", False)] * 3, d)
    assert [s.n_canary for s in path] == [0, 1, 1, 2, 2, 3] and path[-1].decision == "waiting"


def test_first_passage_series_agrees_with_closed_form_and_simulation():
    d = GuardDesign()
    for theta in (0.0, 0.1, 0.15):
        mu, var = _drift(theta, d.drop)
        # At t -> infinity the series gives the closed-form exit probability.
        assert p_rollback_by(1e7, mu, var, d.upper, d.lower) == pytest.approx(_p_upper(mu, var, d.upper, d.lower))
    mu, var = _drift(0.15, d.drop)
    rng = np.random.default_rng(3)
    dt, steps, n = 0.25, 3200, 4000
    x = np.cumsum(mu * dt + math.sqrt(var * dt) * rng.standard_normal((n, steps)), axis=1)
    up, down = x >= d.upper, x <= d.lower
    first_up = np.where(up.any(1), up.argmax(1), 10 ** 9)
    first_down = np.where(down.any(1), down.argmax(1), 10 ** 9)
    for t in (150, 300, 600):
        simulated = ((first_up < first_down) & ((first_up + 1) * dt <= t)).mean()
        assert p_rollback_by(t, mu, var, d.upper, d.lower) == pytest.approx(simulated, abs=0.03)
    # Wald's expected time under an equal canary: -a*b/var at zero drift of the llr.
    assert _expected_time(0.0, 0.01, 3.0, -1.5) == pytest.approx(450.0)


def test_operating_characteristic_in_studies_and_days():
    d = GuardDesign()
    bad = operating_characteristic(drop=0.15, share=0.1, daily_studies=100, baseline=0.874, design=d)
    ten = operating_characteristic(drop=0.10, share=0.1, daily_studies=100, baseline=0.874, design=d)
    equal = operating_characteristic(drop=0.0, share=0.1, daily_studies=100, baseline=0.874, design=d)
    assert equal.p_rollback <= 0.05 and ten.p_rollback >= 0.8 and bad.p_rollback > ten.p_rollback
    assert equal.studies_for_target is None  # never rolled back with probability 0.8
    # The design drop reaches the power within a finite number of studies; a worse canary sooner.
    assert ten.studies_for_target > bad.studies_for_target
    # No decision before 30 canary reads = 300 studies at 10 %.
    assert bad.studies_for_target >= 300 and bad.expected_studies >= 300
    assert bad.expected_days == pytest.approx(bad.expected_studies / 100)
    assert bad.studies_for_target > bad.expected_studies  # the 80 % point lies past the mean
    # A larger share or volume is faster in days.
    wider = operating_characteristic(drop=0.15, share=0.3, daily_studies=100, baseline=0.874, design=d)
    assert wider.expected_days < bad.expected_days
    assert operating_characteristic(drop=0.15, share=0.1, daily_studies=0, baseline=0.874,
                                    design=d).expected_days is None
    for kwargs in ({"share": 0.0}, {"share": 1.0}, {"baseline": 1.0}, {"drop": 0.9}, {"daily_studies": -1}):
        args = {"drop": 0.1, "share": 0.1, "daily_studies": 10, "baseline": 0.87, "design": d, **kwargs}
        with pytest.raises(ValueError):
            operating_characteristic(**args)


def test_fixed_sample_sizes_by_hand():
    # Unpaired, 50/50, 0.9 vs 0.8, one-sided 2.5 %, power 80 %:
    # (1.95996 * sqrt(0.85 * 0.15 * 4) + 0.84162 * sqrt(0.09 * 2 + 0.16 * 2))^2 / 0.01.
    za, zb = 1.959964, 0.841621
    expected = (za * math.sqrt(0.85 * 0.15 * 4) + zb * math.sqrt(0.09 * 2 + 0.16 * 2)) ** 2 / 0.01
    assert fixed_sample_unpaired(baseline=0.9, drop=0.1, share=0.5, alpha=0.025) == pytest.approx(expected, rel=1e-5)
    # Paired (Connor 1987): discordant 0.2.
    expected = (za * math.sqrt(0.2) + zb * math.sqrt(0.2 - 0.01)) ** 2 / 0.01
    assert fixed_sample_paired(discordant=0.2, drop=0.1, alpha=0.025) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        fixed_sample_paired(discordant=0.05, drop=0.1)


def test_boundary_plot_is_csp_safe_and_thins_long_paths():
    from mlcore.ml.plots.rollout import MAX_POINTS, guard_boundary_svg

    llr = list(np.cumsum(np.random.default_rng(0).normal(0.01, 0.1, 5 * MAX_POINTS)))
    svg = guard_boundary_svg(llr=llr, ready=[i >= 60 for i in range(len(llr))], upper=3.0, lower=-2.26,
                             title="canary v2 vs production v1")
    assert svg.startswith("<svg") and ' style="' not in svg and "<style" not in svg
    assert "roll back (3.00)" in svg and "accept (-2.26)" in svg
    empty = guard_boundary_svg(llr=[], ready=[], upper=3.0, lower=-2.26)
    assert "no reads of the canary or production yet" in empty
