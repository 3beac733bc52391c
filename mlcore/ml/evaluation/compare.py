"""Champion vs challenger on one locked set, pair by pair, in plain numpy.

Why paired: both versions scored the same images, so the difference of a figure varies far
less than either figure; resampling images (not the two models separately) keeps the pairing
and gives honest intervals of the *difference*. Everything here takes probabilities in one
class-key order plus integer labels, and returns JSON-safe dicts (``None`` where a figure is
undefined, never a made-up number).

- :func:`paired_bootstrap`: challenger - champion for CXR 4-class macro-F1, accuracy and
  per-class sensitivity/specificity, 95 % percentile intervals, fixed seed;
- :func:`mcnemar`: paired correctness (exact two-sided binomial below 25 discordant pairs,
  else chi-square with continuity correction);
- :func:`flip_list`, :func:`net_correct_flips`, :func:`worklist_effect`: the cases whose top
  class or urgency changes and what that does to a reader's worklist;
- :func:`roc_points`, :func:`reliability_before_after`: one version's curves for its page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.ml.classes import URGENT_KEYS
from mlcore.ml.evaluation.metrics import (
    CXR4_KEYS,
    _json_safe,
    binary_auc,
    ece_sampling_floor,
    expected_calibration_error,
    reliability_table,
)

EXACT_BELOW = 25  # discordant pairs: below this McNemar uses the exact binomial test
ROC_MAX_POINTS = 101
RESAMPLES = 2000  # as the model card's intervals (mlcore.ml.evaluation.card)


def _confusions(labels: np.ndarray, preds: np.ndarray, idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices of every resample at once: ``idx`` (R, n) -> (R, C, C)."""
    resamples = idx.shape[0]
    code = labels[idx] * n_classes + preds[idx] + (np.arange(resamples)[:, None] * n_classes * n_classes)
    counts = np.bincount(code.ravel(), minlength=resamples * n_classes * n_classes)
    return counts.reshape(resamples, n_classes, n_classes)


def _figures(cm: np.ndarray, cxr4: np.ndarray) -> dict[str, np.ndarray]:
    """Per-resample figures from (R, C, C) confusions; NaN where undefined."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2).astype(np.float64)
    predicted = cm.sum(axis=1).astype(np.float64)
    n = cm.sum(axis=(1, 2)).astype(np.float64)[:, None]
    tn = n - support - predicted + tp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(support > 0, tp / support, np.nan)
        spec = np.where(n - support > 0, tn / (n - support), np.nan)
        f1 = np.where(support > 0, 2 * tp / (support + predicted), np.nan)
        present = f1[:, cxr4]
        counted = np.isfinite(present).sum(axis=1)
        macro = np.where(counted > 0, np.nansum(present, axis=1) / np.maximum(counted, 1), np.nan)
        acc = np.where(n[:, 0] > 0, tp.sum(axis=1) / n[:, 0], np.nan)
    return {"sensitivity": sens, "specificity": spec, "f1": f1, "macro_f1_cxr4": macro, "accuracy": acc}


def _interval(point: float, draws: np.ndarray) -> list[float | None]:
    """``[point, low, high]``: None throughout when the point is undefined."""
    if not np.isfinite(point):
        return [None, None, None]
    values = draws[np.isfinite(draws)]
    if values.size == 0:
        return [float(point), None, None]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(point), float(lo), float(hi)]


def _point(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def paired_bootstrap(champion: np.ndarray, challenger: np.ndarray, labels: np.ndarray | Sequence[int],
                     class_keys: Sequence[str], *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Challenger - champion with 95 % percentile intervals of ``resamples`` image-level
    paired resamples (the same images for both in each resample).

    Returns ``{"n", "resamples", "seed", "accuracy": {...}, "macro_f1_cxr4": {...},
    "per_class": {key: {"n", "sensitivity": {...}, "specificity": {...}}}}`` where each
    ``{...}`` is ``{"champion": x, "challenger": y, "diff": [point, low, high]}``. A figure
    undefined on a resample (no positives drawn) is left out of that resample.
    """
    labels = np.asarray(labels, dtype=np.int64)
    pa = np.asarray(champion, dtype=np.float64).argmax(axis=1)
    pb = np.asarray(challenger, dtype=np.float64).argmax(axis=1)
    keys = list(class_keys)
    n, k = len(labels), len(keys)
    if pa.shape != labels.shape or pb.shape != labels.shape:
        raise ValueError(f"need one row of probabilities per label for both versions; got "
                         f"{pa.shape}, {pb.shape} and {labels.shape}")
    if n == 0:
        raise ValueError("cannot compare two versions on an empty set")
    cxr4 = np.array([keys.index(c) for c in CXR4_KEYS if c in keys], dtype=np.int64)
    full = np.arange(n)[None, :]
    point_a = _figures(_confusions(labels, pa, full, k), cxr4)
    point_b = _figures(_confusions(labels, pb, full, k), cxr4)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    draws_a = _figures(_confusions(labels, pa, idx, k), cxr4)
    draws_b = _figures(_confusions(labels, pb, idx, k), cxr4)

    def cell(name: str, c: int | None = None) -> dict[str, Any]:
        a, b = point_a[name][0], point_b[name][0]
        da, db = draws_a[name], draws_b[name]
        if c is not None:
            a, b, da, db = a[c], b[c], da[:, c], db[:, c]
        return {"champion": _point(a), "challenger": _point(b), "diff": _interval(b - a, db - da)}

    return _json_safe({
        "n": n, "resamples": resamples, "seed": seed,
        "accuracy": cell("accuracy"),
        "macro_f1_cxr4": cell("macro_f1_cxr4"),
        "per_class": {key: {"n": int((labels == c).sum()), "sensitivity": cell("sensitivity", c),
                            "specificity": cell("specificity", c), "f1": cell("f1", c)}
                      for c, key in enumerate(keys)},
    })


def mcnemar(champion_correct: Sequence[bool] | np.ndarray, challenger_correct: Sequence[bool] | np.ndarray
            ) -> dict[str, Any]:
    """McNemar's test on paired correctness.

    ``b``: champion right, challenger wrong; ``c``: champion wrong, challenger right. Below
    25 discordant pairs the exact two-sided binomial test (p = min(1, 2 P[X <= min(b, c)]),
    X ~ Bin(b + c, 1/2)), else chi-square (1 df) with continuity correction.
    """
    a = np.asarray(champion_correct, dtype=bool)
    z = np.asarray(challenger_correct, dtype=bool)
    if a.shape != z.shape:
        raise ValueError(f"paired correctness needs equal lengths, got {a.shape} and {z.shape}")
    b, c = int((a & ~z).sum()), int((~a & z).sum())
    m = b + c
    if m == 0:
        return {"b": 0, "c": 0, "method": "none", "statistic": None, "p_value": 1.0}
    if m < EXACT_BELOW:
        tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2.0 ** m
        return {"b": b, "c": c, "method": "exact binomial", "statistic": None, "p_value": min(1.0, 2.0 * tail)}
    stat = (abs(b - c) - 1.0) ** 2 / m
    # Survival function of chi-square with one degree of freedom.
    return {"b": b, "c": c, "method": "chi-square, continuity corrected", "statistic": stat,
            "p_value": math.erfc(math.sqrt(stat / 2.0))}


def _urgent(key: str) -> bool:
    return key in URGENT_KEYS


def flip_list(champion_top: Sequence[str], challenger_top: Sequence[str], labels: Sequence[str | None],
              case_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every case whose top class or urgency changes, with what each version said.

    ``kind``: ``to_urgent`` / ``to_routine`` when urgency changes, else ``class_change``;
    ``effect`` (when the label is known): ``fixed`` (challenger right, champion wrong),
    ``broken`` (the reverse) or ``both_wrong``. An empty top class (scope undecided) is
    routine.
    """
    if not len(champion_top) == len(challenger_top) == len(labels):
        raise ValueError("champion, challenger and labels must have one entry per case")
    ids = list(case_ids) if case_ids is not None else [str(i) for i in range(len(labels))]
    flips = []
    for i, (a, b, y) in enumerate(zip(champion_top, challenger_top, labels, strict=True)):
        ua, ub = _urgent(a), _urgent(b)
        if a == b and ua == ub:
            continue
        kind = "class_change" if ua == ub else ("to_urgent" if ub else "to_routine")
        effect = None
        if y:
            effect = "fixed" if b == y else ("broken" if a == y else "both_wrong")
        flips.append({"index": i, "case": ids[i], "champion": a, "challenger": b, "label": y or None,
                      "kind": kind, "effect": effect, "label_urgent": _urgent(y) if y else None})
    return flips


def net_correct_flips(flips: Sequence[dict[str, Any]], class_keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per true class: flips the challenger fixed, broke, and the net (fixed - broken)."""
    out = {k: {"fixed": 0, "broken": 0, "net": 0} for k in class_keys}
    for f in flips:
        label = f.get("label")
        if label in out and f.get("effect") in ("fixed", "broken"):
            out[label][f["effect"]] += 1
            out[label]["net"] += 1 if f["effect"] == "fixed" else -1
    return out


def worklist_effect(flips: Sequence[dict[str, Any]]) -> dict[str, int]:
    """What the challenger changes in worklist order: cases moving up to urgent and down
    to routine, and how many of each truly are urgent (by the label)."""
    up = [f for f in flips if f["kind"] == "to_urgent"]
    down = [f for f in flips if f["kind"] == "to_routine"]
    return {
        "to_urgent": len(up), "to_routine": len(down),
        "to_urgent_truly_urgent": sum(1 for f in up if f.get("label_urgent")),
        "to_routine_truly_urgent": sum(1 for f in down if f.get("label_urgent")),
    }


def roc_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct score threshold, from (0, 0) to (1, 1)."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], positives[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(p)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / max(int(p.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~p).sum()), 1)]
    return fpr, tpr


def roc_points(probs: np.ndarray, labels: np.ndarray | Sequence[int], class_keys: Sequence[str], *,
               max_points: int = ROC_MAX_POINTS) -> dict[str, dict[str, Any]]:
    """Per class with positives and negatives: ROC points (thinned to ``max_points``, ends
    kept) and the AUC; classes where the curve is undefined are left out."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for c, key in enumerate(class_keys):
        pos = labels == c
        if not 0 < pos.sum() < len(pos):
            continue
        fpr, tpr = roc_curve(probs[:, c], pos)
        if len(fpr) > max_points:
            keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
            fpr, tpr = fpr[keep], tpr[keep]
        out[key] = {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr],
                    "auc": binary_auc(probs[:, c], pos), "n": int(pos.sum())}
    return out


def reliability_before_after(raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray | Sequence[int]
                             ) -> dict[str, Any]:
    """Reliability tables and ECE before (temperature 1) and after temperature scaling, and
    the ECE chance alone gives a perfectly calibrated model at this size (``ece_floor``)."""
    labels = np.asarray(labels, dtype=np.int64)
    return _json_safe({
        "before": reliability_table(np.asarray(raw, dtype=np.float64), labels),
        "after": reliability_table(np.asarray(calibrated, dtype=np.float64), labels),
        "ece_before": expected_calibration_error(raw, labels),
        "ece_after": expected_calibration_error(calibrated, labels),
        "ece_floor": ece_sampling_floor(np.asarray(calibrated, dtype=np.float64)),
    })
