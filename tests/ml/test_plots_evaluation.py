"""The evaluation figures render to inline SVG from stored (JSON) figures, empty cases included."""

import numpy as np

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.evaluation.card import bootstrap_figures
from mlcore.ml.evaluation.compare import paired_bootstrap, reliability_before_after, roc_points
from mlcore.ml.plots.evaluation import (
    confusion_svg,
    differences_svg,
    per_class_metrics_svg,
    reliability_svg,
    roc_svg,
)

KEYS = list(CLASS_KEYS)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    probs = rng.dirichlet(np.ones(len(KEYS)), n)
    return probs, labels


def test_figures_render_with_their_labels():
    probs, labels = _data()
    roc = roc_svg(roc_points(probs, labels, KEYS))
    assert roc.startswith("<svg") and "AUC" in roc and "COVID-19 pneumonia" in roc
    rel = reliability_svg(reliability_before_after(probs ** 2 / (probs ** 2).sum(1, keepdims=True), probs, labels))
    assert "ECE" in rel and "after temperature scaling" in rel
    cm = np.zeros((9, 9), dtype=int)
    np.add.at(cm, (labels, probs.argmax(1)), 1)
    assert "Confusion matrix" in confusion_svg(cm.tolist(), KEYS)
    bars = per_class_metrics_svg(bootstrap_figures(probs, labels, KEYS, resamples=50))
    assert "sensitivity" in bars and "n=" in bars
    diff = differences_svg(paired_bootstrap(probs, probs[::-1].copy(), labels, KEYS, resamples=50),
                           urgent_threshold=-0.02)
    assert "CXR macro-F1" in diff and "gate" in diff


def test_empty_inputs_say_so():
    assert "no class has both" in roc_svg({})
    assert "no cases" in confusion_svg([[0] * 9] * 9, KEYS)
    assert "no classes with images" in per_class_metrics_svg({"per_class": {}})
    assert "no figures" in differences_svg({})


def test_training_curves_draw_logged_series_and_say_when_none():
    from mlcore.ml.plots.evaluation import training_curves_svg

    svg = training_curves_svg({"train_loss": [(0, 2.0), (1, 1.5)], "val_macro_f1": [(0, 0.2), (1, 0.4)]})
    assert "train_loss" in svg and "val_macro_f1" in svg
    assert "logged no training curves" in training_curves_svg({})


def test_svg_has_no_inline_styles_for_a_strict_csp():
    probs, labels = _data()
    svg = roc_svg(roc_points(probs, labels, KEYS))
    assert "style=" not in svg and "<style" not in svg
    assert 'stroke-linejoin="round"' in svg and 'fill="#ffffff"' in svg
