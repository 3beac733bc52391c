"""Paired comparison statistics on hand-checkable cases."""

import math

import numpy as np
import pytest

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.evaluation.compare import (
    flip_list,
    mcnemar,
    net_correct_flips,
    paired_bootstrap,
    reliability_before_after,
    roc_curve,
    roc_points,
    worklist_effect,
)
from mlcore.ml.evaluation.metrics import binary_auc, compute_metrics

KEYS = list(CLASS_KEYS)
COVID, NORMAL, OPACITY = KEYS.index("lung-covid"), KEYS.index("lung-normal"), KEYS.index("lung-opacity")


def one_hot(preds, k=len(KEYS), p=0.9):
    out = np.full((len(preds), k), (1 - p) / (k - 1))
    out[np.arange(len(preds)), preds] = p
    return out


def test_mcnemar_exact_b0_c10():
    champion = [False] * 10 + [True] * 5
    challenger = [True] * 10 + [True] * 5
    result = mcnemar(champion, challenger)
    assert (result["b"], result["c"], result["method"]) == (0, 10, "exact binomial")
    assert result["p_value"] == pytest.approx(2 * 0.5 ** 10)  # 0.001953125


def test_mcnemar_exact_symmetric_is_one_and_none_is_one():
    assert mcnemar([True, False], [False, True])["p_value"] == 1.0
    assert mcnemar([True, True], [True, True]) == {"b": 0, "c": 0, "method": "none", "statistic": None,
                                                    "p_value": 1.0}


def test_mcnemar_chi_square_with_continuity_correction():
    # b=10, c=30: (|10-30| - 1)^2 / 40 = 9.025; p = P(chi2_1 > 9.025) = erfc(sqrt(9.025/2))
    champion = [True] * 10 + [False] * 30
    challenger = [False] * 10 + [True] * 30
    result = mcnemar(champion, challenger)
    assert result["method"].startswith("chi-square")
    assert result["statistic"] == pytest.approx(9.025)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert 0.0026 < result["p_value"] < 0.0027  # tables: chi2_1 = 9.025 -> p ~ 0.00266


def test_bootstrap_of_identical_models_is_exactly_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 60)
    probs = rng.dirichlet(np.ones(len(KEYS)), 60)
    out = paired_bootstrap(probs, probs.copy(), labels, KEYS, resamples=300)
    assert out["macro_f1_cxr4"]["diff"] == [0.0, 0.0, 0.0]
    assert out["accuracy"]["diff"] == [0.0, 0.0, 0.0]
    assert out["per_class"]["lung-covid"]["sensitivity"]["diff"] == [0.0, 0.0, 0.0]
    # A class with no positives: sensitivity undefined for both, never a made-up 0.
    assert out["per_class"]["lung-oct-cnv"]["sensitivity"]["diff"] == [None, None, None]
    assert out["per_class"]["lung-oct-cnv"]["n"] == 0


def test_bootstrap_points_match_compute_metrics_and_interval_covers_point():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 200)
    a = rng.dirichlet(np.ones(len(KEYS)), 200)
    b = a.copy()
    b[np.arange(200), labels] += 0.5  # the challenger is right much more often
    out = paired_bootstrap(a, b, labels, KEYS, resamples=500, seed=3)
    ma, mb = compute_metrics(a, labels), compute_metrics(b, labels)
    assert out["macro_f1_cxr4"]["champion"] == pytest.approx(ma.macro_f1_cxr4)
    assert out["macro_f1_cxr4"]["challenger"] == pytest.approx(mb.macro_f1_cxr4)
    point, lo, hi = out["macro_f1_cxr4"]["diff"]
    assert point == pytest.approx(mb.macro_f1_cxr4 - ma.macro_f1_cxr4)
    assert 0 < lo <= point <= hi
    sens = out["per_class"]["lung-covid"]["sensitivity"]
    assert sens["champion"] == pytest.approx(ma.per_class["lung-covid"].sensitivity)
    assert sens["diff"][1] > 0
    spec = out["per_class"]["lung-covid"]["specificity"]
    assert spec["challenger"] == pytest.approx(mb.per_class["lung-covid"].specificity)
    # Fixed seed: the same intervals twice.
    assert paired_bootstrap(a, b, labels, KEYS, resamples=500, seed=3) == out


def test_bootstrap_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="one row"):
        paired_bootstrap(one_hot([0, 1]), one_hot([0]), [0, 1], KEYS)
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(np.zeros((0, 9)), np.zeros((0, 9)), [], KEYS)


def test_flip_list_kinds_effects_and_worklist():
    champion = ["lung-normal", "lung-covid", "lung-opacity", "lung-normal", "lung-covid", ""]
    challenger = ["lung-covid", "lung-normal", "lung-covid", "lung-normal", "lung-covid", "lung-opacity"]
    labels = ["lung-covid", "lung-covid", "lung-normal", "lung-normal", "lung-covid", None]
    flips = flip_list(champion, challenger, labels, case_ids=list("abcdef"))
    assert [f["case"] for f in flips] == ["a", "b", "c", "f"]
    by_case = {f["case"]: f for f in flips}
    assert (by_case["a"]["kind"], by_case["a"]["effect"]) == ("to_urgent", "fixed")
    assert (by_case["b"]["kind"], by_case["b"]["effect"]) == ("to_routine", "broken")
    assert (by_case["c"]["kind"], by_case["c"]["effect"]) == ("class_change", "both_wrong")
    assert (by_case["f"]["kind"], by_case["f"]["effect"], by_case["f"]["label"]) == ("to_urgent", None, None)
    net = net_correct_flips(flips, KEYS)
    assert net["lung-covid"] == {"fixed": 1, "broken": 1, "net": 0}
    assert net["lung-normal"] == {"fixed": 0, "broken": 0, "net": 0}
    assert worklist_effect(flips) == {"to_urgent": 2, "to_routine": 1, "to_urgent_truly_urgent": 1,
                                      "to_routine_truly_urgent": 1}


def test_roc_curve_hand_case_and_auc_agrees():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positives = np.array([True, False, True, False])
    fpr, tpr = roc_curve(scores, positives)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.trapezoid(tpr, fpr) == pytest.approx(binary_auc(scores, positives)) == pytest.approx(0.75)


def test_roc_points_skip_classes_without_positives_and_thin_long_curves():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 500)
    probs = rng.dirichlet(np.ones(len(KEYS)), 500)
    roc = roc_points(probs, labels, KEYS, max_points=50)
    assert set(roc) == {KEYS[0], KEYS[1]}
    assert len(roc[KEYS[0]]["fpr"]) <= 50
    assert roc[KEYS[0]]["fpr"][0] == 0.0 and roc[KEYS[0]]["tpr"][-1] == 1.0


def test_reliability_before_after_counts_and_ece():
    labels = np.array([COVID, COVID, NORMAL, OPACITY])
    raw = one_hot([COVID, NORMAL, NORMAL, OPACITY], p=0.95)
    calibrated = one_hot([COVID, NORMAL, NORMAL, OPACITY], p=0.75)
    out = reliability_before_after(raw, calibrated, labels)
    assert sum(row["n"] for row in out["before"]) == 4 == sum(row["n"] for row in out["after"])
    assert out["ece_before"] == pytest.approx(0.2)  # confidence 0.95, accuracy 0.75
    assert out["ece_after"] == pytest.approx(0.0)
    assert 0 < out["ece_floor"]["median"] <= out["ece_floor"]["p95"]  # 4 images: chance is large
