"""Classification metrics computed from calibrated probabilities, in plain numpy.

Why numpy and not sklearn/torchmetrics: the same code scores a training run, a promotion
comparison (champion vs challenger on one held-out set) and a benchmark, and must behave the
same everywhere, including the edge cases a small clinical set hits all the time: a class with
no positives (AUC and sensitivity are ``None``, never a made-up 0.5 or 0.0), a class never
predicted, ties in scores.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlcore.ml.classes import CLASS_BY_KEY, CLASS_KEYS, URGENT_KEYS

CXR4_KEYS: tuple[str, ...] = (
    "lung-covid",
    "lung-normal",
    "lung-opacity",
    "lung-viral-pneumonia",
)
ECE_BINS = 15
RELIABILITY_BINS = 10


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """One-vs-rest figures for one class; ``None`` where the figure is undefined."""

    support: int
    predicted: int
    sensitivity: float | None
    specificity: float | None
    precision: float | None
    f1: float | None
    auc: float | None


@dataclass(slots=True)
class EvaluationReport:
    """Everything a promotion decision or a run page shows about one model on one split."""

    class_keys: tuple[str, ...]
    n: int
    accuracy: float | None
    macro_f1: float | None
    macro_f1_cxr4: float | None
    ece: float | None
    urgent_sensitivity: float | None
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    split: str = "test"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (floats, ints, None, str, lists); NaN/inf become None."""
        return _json_safe(
            {
                "class_keys": list(self.class_keys),
                "split": self.split,
                "n": self.n,
                "accuracy": self.accuracy,
                "macro_f1": self.macro_f1,
                "macro_f1_cxr4": self.macro_f1_cxr4,
                "ece": self.ece,
                "urgent_sensitivity": self.urgent_sensitivity,
                "per_class": {k: asdict(v) for k, v in self.per_class.items()},
                "confusion": self.confusion,
                "extra": self.extra,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        return cls(
            class_keys=tuple(data["class_keys"]),
            n=int(data["n"]),
            accuracy=data["accuracy"],
            macro_f1=data["macro_f1"],
            macro_f1_cxr4=data["macro_f1_cxr4"],
            ece=data["ece"],
            urgent_sensitivity=data["urgent_sensitivity"],
            per_class={k: ClassMetrics(**v) for k, v in data["per_class"].items()},
            confusion=[list(map(int, r)) for r in data["confusion"]],
            split=data.get("split", "test"),
            extra=dict(data.get("extra", {})),
        )

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics for MLflow (``None`` figures are left out, not logged as 0)."""
        p = f"{prefix}_" if prefix else ""
        out: dict[str, float] = {}
        for name in ("accuracy", "macro_f1", "macro_f1_cxr4", "ece", "urgent_sensitivity"):
            value = getattr(self, name)
            if value is not None:
                out[f"{p}{name}"] = float(value)
        for key, m in self.per_class.items():
            for name in ("sensitivity", "specificity", "precision", "f1", "auc"):
                value = getattr(m, name)
                if value is not None:
                    out[f"{p}{key}_{name}"] = float(value)
        for name, value in self.extra.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(float(value)):
                out[f"{p}{name}"] = float(value)
        return out

    def to_markdown(self) -> str:
        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:.3f}"

        lines = [
            f"### Evaluation on `{self.split}` (n={self.n})",
            "",
            f"- accuracy: {fmt(self.accuracy)}",
            f"- macro-F1 (classes present): {fmt(self.macro_f1)}",
            f"- macro-F1 (4 CXR classes): {fmt(self.macro_f1_cxr4)}",
            f"- ECE ({ECE_BINS} bins): {fmt(self.ece)}",
            f"- urgent-class sensitivity: {fmt(self.urgent_sensitivity)}",
        ]
        for name, value in self.extra.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                lines.append(f"- {name}: {fmt(float(value))}")
        lines += [
            "",
            "| class | n | sensitivity | specificity | precision | F1 | AUC |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, m in self.per_class.items():
            lines.append(
                f"| {key} | {m.support} | {fmt(m.sensitivity)} | {fmt(m.specificity)} | "
                f"{fmt(m.precision)} | {fmt(m.f1)} | {fmt(m.auc)} |"
            )
        return "\n".join(lines) + "\n"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _validate(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(
            f"probs must have shape (N, {n_classes}), got {probs.shape}; "
            "pass one row of class probabilities per image in class_keys order"
        )
    if labels.ndim != 1 or labels.shape[0] != probs.shape[0]:
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be class indices in [0, {n_classes}), got {labels}")


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def binary_auc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Rank-based ROC AUC (Mann-Whitney U with average ranks for ties); ``None`` if undefined."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    n_neg = int(positives.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank per value
    ranks = avg_rank[inverse]
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float | None:
    """Top-label ECE with ``n_bins`` equal-width confidence bins over (0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.shape[0] == 0:
        return None
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += abs(correct[mask].mean() - conf[mask].mean()) * mask.mean()
    return float(ece)


def ece_sampling_floor(probs: np.ndarray, *, n_bins: int = ECE_BINS, draws: int = 2000,
                       seed: int = 0) -> dict[str, float] | None:
    """The ECE a perfectly calibrated model with these confidences would show on a split of
    this size: each image is right with probability equal to its top-class confidence, drawn
    ``draws`` times (seeded). Returns the median and the 95th percentile.

    ECE is biased upwards on small splits (a bin of five images is rarely exactly at its
    confidence), so a figure is read against this floor: on ~240 images with 15 bins it is
    about 0.04, and an ECE above the 95th percentile is miscalibration rather than chance.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[0] == 0:
        return None
    rng = np.random.default_rng(seed)
    conf = probs.max(axis=1)
    top = probs.argmax(axis=1)
    values = [expected_calibration_error(probs, np.where(rng.random(conf.shape[0]) < conf, top, -1),
                                         n_bins=n_bins) for _ in range(draws)]
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))}


def urgent_sensitivity(
    labels: np.ndarray, preds: np.ndarray, class_keys: Sequence[str] = CLASS_KEYS
) -> float | None:
    """Share of truly urgent images predicted as ANY urgent class (what triage needs)."""
    urgent = np.array([k in URGENT_KEYS for k in class_keys], dtype=bool)
    true_urgent = urgent[np.asarray(labels, dtype=np.int64)]
    if not true_urgent.any():
        return None
    pred_urgent = urgent[np.asarray(preds, dtype=np.int64)]
    return float(pred_urgent[true_urgent].mean())


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray | Sequence[int],
    *,
    class_keys: Sequence[str] = CLASS_KEYS,
    split: str = "test",
    extra: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Score ``probs`` (N, C) against integer ``labels`` (N,) in ``class_keys`` order.

    Macro-F1 averages over the classes present in ``labels`` (a class with no images cannot
    be scored and must not drag the mean to 0); ``macro_f1_cxr4`` does the same over the four
    CXR classes that public data supports well.
    """
    class_keys = tuple(class_keys)
    unknown = [k for k in class_keys if k not in CLASS_BY_KEY]
    if unknown:
        raise ValueError(f"unknown class keys {unknown}; accepted: {', '.join(CLASS_KEYS)}")
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(class_keys)
    _validate(probs, labels, n_classes)
    n = int(labels.shape[0])
    preds = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(labels, preds, n_classes)

    per_class: dict[str, ClassMetrics] = {}
    for c, key in enumerate(class_keys):
        tp = int(cm[c, c])
        fn = int(cm[c].sum() - tp)
        fp = int(cm[:, c].sum() - tp)
        tn = n - tp - fn - fp
        support, predicted = tp + fn, tp + fp
        precision = _ratio(tp, predicted)
        if precision is None and support > 0:
            precision = 0.0  # never predicted although present: no correct calls
        per_class[key] = ClassMetrics(
            support=support,
            predicted=predicted,
            sensitivity=_ratio(tp, support),
            specificity=_ratio(tn, tn + fp),
            precision=precision,
            f1=_ratio(2 * tp, 2 * tp + fp + fn),
            auc=binary_auc(probs[:, c], labels == c) if n else None,
        )

    def macro(keys: Sequence[str]) -> float | None:
        f1s = [per_class[k].f1 for k in keys if k in per_class and per_class[k].support > 0]
        vals = [f for f in f1s if f is not None]
        return float(np.mean(vals)) if vals else None

    return EvaluationReport(
        class_keys=class_keys,
        n=n,
        accuracy=float((preds == labels).mean()) if n else None,
        macro_f1=macro(class_keys),
        macro_f1_cxr4=macro(CXR4_KEYS),
        ece=expected_calibration_error(probs, labels),
        urgent_sensitivity=urgent_sensitivity(labels, preds, class_keys) if n else None,
        per_class=per_class,
        confusion=cm.tolist(),
        split=split,
        extra=dict(extra or {}),
    )


def reliability_table(probs: np.ndarray, labels: np.ndarray, *, bins: int = RELIABILITY_BINS
                      ) -> list[dict[str, Any]]:
    """Top-class confidence in equal-width bins: images, mean confidence, accuracy."""
    probs = np.asarray(probs, dtype=np.float64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        k = int(inside.sum())
        rows.append({"low": float(lo), "high": float(hi), "n": k,
                     "confidence": float(conf[inside].mean()) if k else None,
                     "accuracy": float((pred[inside] == labels[inside]).mean()) if k else None})
    return rows
