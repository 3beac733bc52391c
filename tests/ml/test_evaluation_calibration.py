"""Temperature scaling recovers a known temperature and reduces calibration error."""

import numpy as np
import pytest

from mlcore.ml.evaluation import calibration_summary, fit_temperature


def synthetic_logits(n: int, true_t: float, seed: int = 0):
    """Labels drawn from softmax(z / true_t): the calibrated temperature is true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, size=(n, 9))
    p = np.exp(z / true_t - (z / true_t).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(9, p=row) for row in p])
    return z, labels


def test_fit_recovers_known_temperature():
    z, y = synthetic_logits(4000, 2.5)
    assert fit_temperature(z, y) == pytest.approx(2.5, rel=0.10)


def test_ece_drops_on_over_confident_logits():
    z, y = synthetic_logits(3000, 3.0, seed=1)  # raw logits are 3x too confident
    t = fit_temperature(z, y)
    s = calibration_summary(z, y, t)
    assert s["temperature"] == t and t > 2.0
    assert s["ece_after"] < 0.5 * s["ece_before"]
    assert s["nll_after"] < s["nll_before"]


def test_empty_or_mismatched_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        fit_temperature(np.zeros((0, 9)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        fit_temperature(np.zeros((3, 9)), np.zeros(2, dtype=int))
