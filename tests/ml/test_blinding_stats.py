"""Automation-bias figures: Wilson and Newcombe intervals, per version and class."""

import pytest

from mlcore.ml.evaluation.blinding import automation_bias, newcombe_difference, wilson


def test_wilson_matches_published_values():
    # Newcombe (1998) table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605.
    p, lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662) and p == pytest.approx(81 / 263)
    _, lo, hi = wilson(15, 148)
    assert (round(lo, 4), round(hi, 4)) == (0.0624, 0.1605)
    assert wilson(0, 0) == [None, None, None]
    assert wilson(0, 10)[1] == 0.0 and wilson(10, 10)[2] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wilson(5, 3)


def test_newcombe_difference_matches_published_values():
    # Newcombe (1998) table II, example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339 (method 10).
    d, lo, hi = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    # example (e): 10/10 vs 0/10 -> 0.6075 to 1.0000
    _, lo, hi = newcombe_difference(10, 10, 0, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.6075, 1.0)
    assert newcombe_difference(3, 4, 0, 0) == [None, None, None]


def test_automation_bias_per_version_and_class():
    rows = ([("2", "lung-covid", True, True)] * 6 + [("2", "lung-covid", True, False)] * 4
            + [("2", "lung-covid", False, True)] * 18 + [("2", "lung-covid", False, False)] * 2
            + [("2", "lung-normal", False, True)] * 5 + [("10", "lung-normal", True, True)])
    report = automation_bias(rows)
    assert [v["version"] for v in report] == ["2", "10"]
    covid = report[0]["per_class"]["lung-covid"]
    assert (covid["blinded"]["n"], covid["blinded"]["agreed"], covid["shown"]["n"], covid["shown"]["agreed"]) == (10, 6, 20, 18)
    assert covid["inflation"][0] == pytest.approx(0.9 - 0.6)
    assert covid["inflation"] == pytest.approx(newcombe_difference(18, 20, 6, 10))
    overall = report[0]["overall"]
    assert overall["blinded"]["agreement"][0] == pytest.approx(0.6) and overall["shown"]["n"] == 25
    # No blinded reads of a class: no inflation figure, not a made-up one.
    assert report[0]["per_class"]["lung-normal"]["inflation"] == [None, None, None]
