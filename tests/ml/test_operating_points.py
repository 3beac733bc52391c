"""The threshold search and the urgency rule (pure numpy)."""

import numpy as np
import pytest

from mlcore.ml.evaluation.operating_points import (
    URGENT_BAND,
    OperatingPointError,
    propose_operating_points,
    threshold_for_sensitivity,
    urgency_priorities,
    urgency_priority,
)

KEYS = ("a-urgent", "b-routine", "c-urgent")
URGENT = frozenset({"a-urgent", "c-urgent"})


def test_threshold_is_the_largest_that_keeps_the_target():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.95, 0.1])
    pos = np.array([1, 1, 1, 1, 1, 0, 0], dtype=bool)
    assert threshold_for_sensitivity(scores, pos, 1.0) == 0.2
    assert threshold_for_sensitivity(scores, pos, 0.8) == 0.6  # 4 of 5
    assert threshold_for_sensitivity(scores, pos, 0.61) == 0.6  # needs ceil(3.05) = 4
    assert threshold_for_sensitivity(scores, pos, 0.6) == 0.7  # exactly 3 of 5
    # The float error of 0.7 * 10 does not ask for an eighth image.
    ten = np.linspace(1.0, 0.1, 10)
    assert threshold_for_sensitivity(ten, np.ones(10, bool), 0.7) == pytest.approx(ten[6])


def test_ties_are_flagged_and_sensitivity_may_exceed_the_target():
    scores = np.array([0.5, 0.5, 0.5, 0.5, 0.9])
    pos = np.ones(5, dtype=bool)
    t = threshold_for_sensitivity(scores, pos, 0.4)  # 2 of 5 needed; the 2nd largest is a tie at 0.5
    assert t == 0.5 and (scores >= t).mean() == 1.0


def test_out_of_scope_images_count_as_flagged():
    scores = np.array([0.9, 0.05, 0.3])
    pos = np.ones(3, dtype=bool)
    ood = np.array([False, True, False])
    assert threshold_for_sensitivity(scores, pos, 1.0, always=ood) == 0.3
    assert threshold_for_sensitivity(scores, pos, 1 / 3, always=ood) == 1.0  # met by the flag alone


def test_no_positives_and_unreachable_targets_say_why():
    with pytest.raises(OperatingPointError, match="no positive images"):
        threshold_for_sensitivity(np.array([0.4, 0.6]), np.zeros(2, bool), 0.9)
    with pytest.raises(OperatingPointError, match=r"unreachable: .* reaches 0\.500"):
        threshold_for_sensitivity(np.array([0.9, 0.001]), np.ones(2, bool), 1.0)
    with pytest.raises(OperatingPointError, match="between 0 and 1"):
        threshold_for_sensitivity(np.array([0.9]), np.ones(1, bool), 1.5)


def test_priority_crosses_the_band_exactly_at_the_threshold_and_stays_monotone():
    t = {"a-urgent": 0.3}
    below = urgency_priority({"a-urgent": 0.29, "c-urgent": 0.0}, urgent_keys=URGENT, thresholds=t)
    at = urgency_priority({"a-urgent": 0.3, "c-urgent": 0.0}, urgent_keys=URGENT, thresholds=t)
    assert below < URGENT_BAND <= at and round(below, 6) < URGENT_BAND
    # c-urgent has no point: 0.5 on its own probability (identity map).
    assert urgency_priority({"a-urgent": 0.0, "c-urgent": 0.42}, urgent_keys=URGENT, thresholds=t) \
        == pytest.approx(0.42)
    # Without points: the old rule, urgent mass.
    assert urgency_priority({"a-urgent": 0.3, "c-urgent": 0.25, "b-routine": 0.45}, urgent_keys=URGENT) \
        == pytest.approx(0.55)
    assert urgency_priority({"a-urgent": 0.0}, urgent_keys=URGENT, out_of_scope=True) == 1.0
    grid = np.linspace(0, 1, 101)
    probs = np.stack([grid, 1 - grid, np.zeros_like(grid)], axis=1)
    pri = urgency_priorities(probs, KEYS, urgent_keys=URGENT, thresholds=t)
    assert np.all(np.diff(pri) >= 0)
    scalar = [urgency_priority(dict(zip(KEYS, row, strict=True)), urgent_keys=URGENT, thresholds=t) for row in probs]
    assert np.allclose(pri, scalar)


def _case(rng, n_per=40):
    labels = np.repeat(np.arange(3), n_per)
    def probs(noise):
        logits = np.eye(3)[labels] * 2.0 + rng.normal(0, noise, (len(labels), 3))
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
    return labels, probs(0.8), probs(1.2)


def test_proposals_keep_the_champion_sensitivity():
    rng = np.random.default_rng(0)
    labels, a, b = _case(rng)
    out = propose_operating_points(champion_probs=a, challenger_probs=b, labels=labels, class_keys=KEYS,
                                   urgent_keys=URGENT, resamples=200)
    assert set(out) == {"a-urgent", "c-urgent"}
    flagged_a = a[:, [0, 2]].sum(axis=1) >= 0.5
    for key, c in (("a-urgent", 0), ("c-urgent", 2)):
        entry = out[key]
        pos = labels == c
        assert entry["target_sensitivity"] == pytest.approx(flagged_a[pos].mean())
        assert entry["error"] is None and "mass" in entry["champion_rule"]
        t = entry["threshold"]
        sens = (b[pos, c] >= t).mean()
        assert sens >= entry["target_sensitivity"] and entry["sensitivity"][0] == pytest.approx(sens)
        # the largest such threshold: the next score above it loses a positive
        higher = np.sort(np.unique(b[pos, c]))
        higher = higher[higher > t]
        if higher.size:
            assert (b[pos, c] >= higher[0]).mean() < entry["target_sensitivity"]
        assert entry["specificity"][0] == pytest.approx((b[~pos, c] < t).mean())
        lo, hi = entry["sensitivity"][1:]
        assert lo <= entry["sensitivity"][0] <= hi
        assert entry["n_positive"] == 40 and entry["n_negative"] == 80


def test_champion_with_applied_points_and_classes_without_positives():
    rng = np.random.default_rng(1)
    labels, a, b = _case(rng)
    labels = np.where(labels == 2, 1, labels)  # no c-urgent images at all
    out = propose_operating_points(champion_probs=a, challenger_probs=b, labels=labels, class_keys=KEYS,
                                   urgent_keys=URGENT, champion_thresholds={"a-urgent": 0.2}, resamples=0)
    pos = labels == 0
    assert out["a-urgent"]["target_sensitivity"] == pytest.approx((a[pos, 0] >= 0.2).mean())
    assert "applied threshold 0.2" in out["a-urgent"]["champion_rule"]
    assert out["c-urgent"]["threshold"] is None and "no positive images" in out["c-urgent"]["error"]
    with pytest.raises(OperatingPointError, match=r"in \(0, 1\]"):
        propose_operating_points(champion_probs=a, challenger_probs=b, labels=labels, class_keys=KEYS,
                                 urgent_keys=URGENT, champion_thresholds={"a-urgent": 0.0})
    with pytest.raises(OperatingPointError, match="one row of 3"):
        propose_operating_points(champion_probs=a[:5], challenger_probs=b, labels=labels, class_keys=KEYS,
                                 urgent_keys=URGENT)


def test_unreachable_target_is_reported_per_class():
    labels = np.array([0, 0, 1, 1])
    a = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    b = np.array([[0.9, 0.1, 0.0], [0.001, 0.999, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    out = propose_operating_points(champion_probs=a, challenger_probs=b, labels=labels, class_keys=KEYS,
                                   urgent_keys=URGENT, resamples=50)
    assert out["a-urgent"]["threshold"] is None
    assert "unreachable" in out["a-urgent"]["error"] and "0.500" in out["a-urgent"]["error"]
