"""Operating points: per urgent class, the threshold on the class probability that keeps the
champion's sensitivity on the locked set (plain numpy, no Django).

**The urgency rule** (one function for the worklist and for the evaluation, so what is measured
on the locked set is what the worklist does):

- a version *without* applied operating points flags an image urgent when its urgent-class
  probability mass (the sum over the urgent classes) is at least ``DEFAULT_URGENT_MASS`` (0.5):
  the rule the worklist has always used;
- a version *with* applied points flags it when any urgent class ``k`` reaches its threshold
  ``t_k`` (a class without a point keeps 0.5 on its own probability).
  :func:`urgency_priority` maps each class probability piecewise-linearly so that ``p = t_k``
  lands on 0.5: below the threshold ``0.5 p / t_k``, above it ``0.5 + 0.5 (p - t_k) / (1 - t_k)``,
  and the priority is the largest of these. It stays monotone in every probability, so the
  worklist's order (priority, highest first) and its urgent band (priority >= 0.5) mean the same
  thing with and without points;
- out-of-scope images are always flagged (priority 1.0: a person must look at them).

**The champion's sensitivity for class k** is the share of the set's class-``k`` images its
rule flags urgent. The challenger's point for ``k`` is the *largest* threshold (most specific)
whose sensitivity on the same images is at least that; ties are counted as flagged
(``p >= t``), so the sensitivity reached may exceed the target. A threshold below
``MIN_THRESHOLD`` would flag nearly everything and is refused as "unreachable".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlcore.ml.urgency import BELOW_BAND, DEFAULT_URGENT_MASS, URGENT_BAND, urgency_priority

__all__ = ["DEFAULT_URGENT_MASS", "URGENT_BAND", "OperatingPointError", "check_thresholds", "propose_operating_points",
           "threshold_for_sensitivity", "urgency_priorities", "urgency_priority"]

MIN_THRESHOLD = 0.01
RESAMPLES = 1000


class OperatingPointError(ValueError):
    """No operating point can be proposed (the message says why)."""


def check_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for key, value in thresholds.items():
        t = float(value)
        if not math.isfinite(t) or not 0.0 < t <= 1.0:
            raise OperatingPointError(f"threshold of {key} must be in (0, 1], got {value!r}")
        out[key] = t
    return out


def urgency_priorities(probs: np.ndarray, class_keys: Sequence[str], *, urgent_keys: Sequence[str] | frozenset[str],
                       thresholds: Mapping[str, float] | None = None, ood: np.ndarray | None = None) -> np.ndarray:
    """:func:`urgency_priority` of every row of ``probs`` (n, C) at once."""
    probs = np.asarray(probs, dtype=np.float64)
    keys = list(class_keys)
    urgent = [keys.index(k) for k in keys if k in urgent_keys]
    if not thresholds:
        out = probs[:, urgent].sum(axis=1) if urgent else np.zeros(len(probs))
    else:
        cols = []
        for c in urgent:
            t = float(thresholds.get(keys[c], DEFAULT_URGENT_MASS))
            p = probs[:, c]
            above = 1.0 if t >= 1.0 else 0.5 + 0.5 * (p - t) / (1.0 - t)
            cols.append(np.where(p >= t, above, np.minimum(0.5 * p / t, BELOW_BAND)))
        out = np.max(np.stack(cols, axis=1), axis=1) if cols else np.zeros(len(probs))
    if ood is not None:
        out = np.where(np.asarray(ood, dtype=bool), 1.0, out)
    return out


def threshold_for_sensitivity(scores: np.ndarray, positives: np.ndarray, target: float, *,
                              always: np.ndarray | None = None, min_threshold: float = MIN_THRESHOLD) -> float:
    """The largest threshold ``t`` (>= ``min_threshold``) with
    ``mean(scores[positives] >= t or always[positives]) >= target``.

    ``always``: images flagged whatever the threshold (out of scope). Raises
    :class:`OperatingPointError` without positives or when the target cannot be reached.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    always = np.zeros_like(positives) if always is None else np.asarray(always, dtype=bool)
    if not 0.0 <= target <= 1.0 or not math.isfinite(target):
        raise OperatingPointError(f"target sensitivity must be between 0 and 1, got {target!r}")
    n_pos = int(positives.sum())
    if n_pos == 0:
        raise OperatingPointError("no positive images of this class in the set: sensitivity is undefined")
    # Count needed, robust to float error in target * n (e.g. 0.7 * 10 = 7.000000000000001).
    needed = math.ceil(target * n_pos - 1e-9)
    free = int((positives & always).sum())
    ranked = np.sort(scores[positives & ~always])[::-1]
    m = needed - free
    if m <= 0:
        return 1.0  # the out-of-scope flags alone reach the target; the most specific threshold
    if m > len(ranked) or ranked[m - 1] < min_threshold:
        best = (free + int((ranked >= min_threshold).sum())) / n_pos
        raise OperatingPointError(
            f"sensitivity {target:.3f} is unreachable: at the lowest threshold allowed ({min_threshold}) "
            f"this version reaches {best:.3f} ({n_pos} positive images)")
    return float(ranked[m - 1])


def _interval(point: float | None, draws: np.ndarray) -> list[float | None]:
    if point is None:
        return [None, None, None]
    values = draws[np.isfinite(draws)]
    if values.size == 0:
        return [point, None, None]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [point, float(lo), float(hi)]


def _rate(hits: np.ndarray, mask: np.ndarray) -> float | None:
    n = int(mask.sum())
    return float((hits & mask).sum() / n) if n else None


def propose_operating_points(
    *, champion_probs: np.ndarray, challenger_probs: np.ndarray, labels: np.ndarray | Sequence[int],
    class_keys: Sequence[str], urgent_keys: Sequence[str] | frozenset[str],
    champion_thresholds: Mapping[str, float] | None = None, champion_ood: np.ndarray | None = None,
    challenger_ood: np.ndarray | None = None, resamples: int = RESAMPLES, seed: int = 0,
    min_threshold: float = MIN_THRESHOLD,
) -> dict[str, dict[str, Any]]:
    """Per urgent class: the challenger's operating point keeping the champion's sensitivity.

    Returns ``{key: {"n_positive", "n_negative", "champion_rule", "target_sensitivity",
    "threshold", "sensitivity": [point, low, high], "specificity": [...],
    "champion_sensitivity": [...], "sensitivity_diff": [...], "error"}}``; intervals are 95 %
    percentile intervals of ``resamples`` paired image resamples at the fixed threshold (the
    search itself is not resampled). ``error`` (with ``threshold`` None) says why a class has
    no point: no positives, or the target unreachable.
    """
    labels = np.asarray(labels, dtype=np.int64)
    a = np.asarray(champion_probs, dtype=np.float64)
    b = np.asarray(challenger_probs, dtype=np.float64)
    keys = list(class_keys)
    n = len(labels)
    if a.shape != (n, len(keys)) or b.shape != (n, len(keys)):
        raise OperatingPointError(f"need one row of {len(keys)} probabilities per label for both versions; "
                                  f"got {a.shape}, {b.shape} for {n} labels")
    if n == 0:
        raise OperatingPointError("cannot propose operating points on an empty set")
    ood_a = np.zeros(n, dtype=bool) if champion_ood is None else np.asarray(champion_ood, dtype=bool)
    ood_b = np.zeros(n, dtype=bool) if challenger_ood is None else np.asarray(challenger_ood, dtype=bool)
    thresholds = check_thresholds(champion_thresholds or {})
    flagged_a = urgency_priorities(a, keys, urgent_keys=urgent_keys, thresholds=thresholds, ood=ood_a) >= URGENT_BAND
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n)) if resamples else None
    out: dict[str, dict[str, Any]] = {}
    for c, key in enumerate(keys):
        if key not in urgent_keys:
            continue
        pos = labels == c
        rule = (f"applied threshold {thresholds[key]:.4g} on its probability" if key in thresholds else
                "threshold 0.5 on its probability (other classes have applied points)" if thresholds else
                f"default: urgent-class probability mass >= {DEFAULT_URGENT_MASS}")
        entry: dict[str, Any] = {"n_positive": int(pos.sum()), "n_negative": int((~pos).sum()),
                                 "champion_rule": rule, "target_sensitivity": _rate(flagged_a, pos),
                                 "threshold": None, "sensitivity": [None] * 3, "specificity": [None] * 3,
                                 "champion_sensitivity": [None] * 3, "sensitivity_diff": [None] * 3,
                                 "error": None}
        out[key] = entry
        try:
            if entry["target_sensitivity"] is None:
                raise OperatingPointError("no positive images of this class in the set: sensitivity is undefined")
            t = threshold_for_sensitivity(b[:, c], pos, entry["target_sensitivity"], always=ood_b,
                                          min_threshold=min_threshold)
        except OperatingPointError as exc:
            entry["error"] = str(exc)
            continue
        flagged_b = (b[:, c] >= t) | ood_b
        sens_b, spec_b = _rate(flagged_b, pos), _rate(~flagged_b, ~pos)
        entry["threshold"] = t
        if idx is None:
            entry.update(sensitivity=[sens_b, None, None], specificity=[spec_b, None, None],
                         champion_sensitivity=[entry["target_sensitivity"], None, None],
                         sensitivity_diff=[sens_b - entry["target_sensitivity"], None, None])
            continue
        p, fb, fa = pos[idx], flagged_b[idx], flagged_a[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            npos = p.sum(axis=1).astype(np.float64)
            nneg = (~p).sum(axis=1).astype(np.float64)
            sb = np.where(npos > 0, (p & fb).sum(axis=1) / npos, np.nan)
            sa = np.where(npos > 0, (p & fa).sum(axis=1) / npos, np.nan)
            xb = np.where(nneg > 0, (~p & ~fb).sum(axis=1) / nneg, np.nan)
        entry["sensitivity"] = _interval(sens_b, sb)
        entry["specificity"] = _interval(spec_b, xb)
        entry["champion_sensitivity"] = _interval(entry["target_sensitivity"], sa)
        entry["sensitivity_diff"] = _interval(sens_b - entry["target_sensitivity"], sb - sa)
    return out
