"""Metrics on hand-made cases where the right answer is known."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.evaluation import (
    EvaluationReport,
    binary_auc,
    compute_metrics,
    confusion_matrix_png,
    expected_calibration_error,
    urgent_sensitivity,
)

C = len(CLASS_KEYS)


def one_hot(idx, n=C, p=1.0):
    out = np.full((len(idx), n), (1 - p) / (n - 1))
    out[np.arange(len(idx)), idx] = p
    return out


def test_perfect_predictions():
    labels = np.arange(C).repeat(2)
    r = compute_metrics(one_hot(labels), labels)
    assert r.accuracy == 1.0 and r.macro_f1 == 1.0 and r.macro_f1_cxr4 == 1.0
    assert r.urgent_sensitivity == 1.0
    assert r.ece == pytest.approx(0.0)
    assert all(m.sensitivity == 1.0 and m.specificity == 1.0 and m.auc == 1.0
               for m in r.per_class.values())
    assert np.array_equal(np.array(r.confusion), 2 * np.eye(C, dtype=int))


def test_all_wrong_predictions():
    labels = np.arange(C)
    preds = (labels + 1) % C
    r = compute_metrics(one_hot(preds), labels)
    assert r.accuracy == 0.0 and r.macro_f1 == 0.0
    assert all(m.sensitivity == 0.0 and m.f1 == 0.0 for m in r.per_class.values())
    assert r.ece == pytest.approx(1.0)  # confident and always wrong


def test_auc_of_known_ranking_and_ties():
    # positives ranked 1st, 3rd; negatives 2nd, 4th -> 3 of 4 pairs ordered: AUC 0.75
    assert binary_auc(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == 0.75
    assert binary_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5  # tie counts half
    assert binary_auc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    assert binary_auc(np.array([0.3, 0.2]), np.array([0, 0])) is None


def test_absent_class_is_none_not_zero_and_excluded_from_macro():
    labels = np.array([0, 0, 1, 1])
    probs = one_hot(np.array([0, 0, 1, 0]), p=0.9)
    r = compute_metrics(probs, labels)
    absent = r.per_class[CLASS_KEYS[5]]
    assert absent.support == 0 and absent.sensitivity is None and absent.auc is None
    f1_0, f1_1 = 2 * 2 / (2 * 2 + 1), 2 * 1 / (2 * 1 + 1)
    assert r.macro_f1 == pytest.approx((f1_0 + f1_1) / 2)
    # only lung-covid and lung-normal of the 4 CXR classes are present
    assert r.macro_f1_cxr4 == pytest.approx((f1_0 + f1_1) / 2)
    assert r.per_class[CLASS_KEYS[1]].precision == 1.0
    assert r.per_class[CLASS_KEYS[0]].specificity == pytest.approx(1 / 2)


def test_urgent_sensitivity_counts_any_urgent_class():
    covid, opacity = CLASS_KEYS.index("lung-covid"), CLASS_KEYS.index("lung-opacity")
    normal, drusen = CLASS_KEYS.index("lung-normal"), CLASS_KEYS.index("lung-oct-drusen")
    labels = np.array([covid, covid, opacity, normal])
    preds = np.array([opacity, normal, opacity, covid])  # covid->opacity still urgent
    assert urgent_sensitivity(labels, preds) == pytest.approx(2 / 3)
    assert urgent_sensitivity(np.array([normal, drusen]), np.array([normal, drusen])) is None


def test_ece_of_known_bins():
    # 10 images at confidence 0.8 of which 5 right: |0.5 - 0.8| = 0.3
    probs = np.tile(np.r_[0.8, np.full(C - 1, 0.2 / (C - 1))], (10, 1))
    labels = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3)


def test_report_json_markdown_and_roundtrip():
    labels = np.array([0, 1, 2, 2])
    r = compute_metrics(one_hot(np.array([0, 1, 2, 1]), p=0.7), labels,
                        extra={"temperature": 1.5, "nan": float("nan")})
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)  # JSON-safe: no NaN
    assert d["extra"]["nan"] is None
    back = EvaluationReport.from_dict(json.loads(text))
    assert back.per_class == r.per_class and back.confusion == r.confusion
    md = r.to_markdown()
    assert "| lung-covid | 1 |" in md and "macro-F1" in md
    flat = r.flat_metrics("test")
    assert flat["test_accuracy"] == 0.75 and "test_lung-covid_sensitivity" in flat
    assert "test_lung-oct-cnv_sensitivity" not in flat  # undefined -> not logged


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 9\)"):
        compute_metrics(np.zeros((3, 4)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(np.zeros((3, C)), np.zeros(2, dtype=int))


def test_confusion_png_is_a_png_of_the_right_shape():
    cm = np.arange(C * C).reshape(C, C)
    png = confusion_matrix_png(cm, CLASS_KEYS)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 9 * 40 and img.height > 9 * 40
    with pytest.raises(ValueError, match="9 class keys"):
        confusion_matrix_png(np.zeros((2, 2)), CLASS_KEYS)


def test_ece_sampling_floor_separates_chance_from_miscalibration():
    from mlcore.ml.evaluation.metrics import ece_sampling_floor, expected_calibration_error

    rng = np.random.default_rng(1)

    def split(n, overconfidence=0.0):
        conf = rng.uniform(0.5, 1.0, n)
        probs = np.stack([conf, 1 - conf], axis=1)
        labels = np.where(rng.random(n) < conf - overconfidence, 0, 1)  # right with prob. conf - over
        return probs, labels

    small, large = ece_sampling_floor(split(240)[0]), ece_sampling_floor(split(5000)[0])
    assert 0.02 < small["median"] < small["p95"] < 0.1  # ~240 images: ECE is biased upwards
    assert large["p95"] < small["median"]  # the floor falls with the split's size
    probs, labels = split(240)
    assert ece_sampling_floor(probs, seed=3) == ece_sampling_floor(probs, seed=3)  # seeded
    p95 = small["p95"]  # the same distribution of confidences
    calibrated = [expected_calibration_error(*split(240)) <= p95 for _ in range(40)]
    assert sum(calibrated) >= 34  # a calibrated model stays under the 95th percentile
    probs, labels = split(240, overconfidence=0.12)
    assert expected_calibration_error(probs, labels) > ece_sampling_floor(probs)["p95"]
    assert ece_sampling_floor(np.zeros((0, 2))) is None
