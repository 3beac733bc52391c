"""Evaluation figures as inline SVG: ROC curves, reliability before/after temperature
scaling, confusion matrix, per-class metrics with intervals, and a comparison's differences.

Inputs are the JSON-safe dicts of ``mlcore.ml.evaluation.compare`` / ``card`` (what the
Evaluation row stores), so a page re-renders a figure without the model or the images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.ml.plots._svg import PALETTE, svg_figure


def _name(key: str) -> str:
    info = CLASS_BY_KEY.get(key)
    return info.display_name if info else key


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def roc_svg(roc: Mapping[str, Mapping[str, Any]]) -> str:
    """One curve per class (``compare.roc_points`` output), AUC in the legend."""
    with svg_figure(6.0, 4.6) as (fig, out):
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
        for i, (key, curve) in enumerate(roc.items()):
            auc = curve.get("auc")
            label = f"{_name(key)} (AUC {auc:.3f})" if auc is not None else _name(key)
            ax.plot(curve["fpr"], curve["tpr"], color=PALETTE[i % len(PALETTE)], linewidth=1.5, label=label)
        if not roc:
            _empty(ax, "no class has both positives and negatives")
        else:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("1 - specificity (false-positive rate)")
        ax.set_ylabel("sensitivity")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_title("ROC, one class vs the rest", fontsize=10)
    return out[0]


def reliability_svg(reliability: Mapping[str, Any]) -> str:
    """Accuracy vs mean confidence per bin, before and after temperature scaling."""
    with svg_figure(5.0, 4.4) as (fig, out):
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfect calibration")
        for i, (which, label) in enumerate((("before", "before scaling"), ("after", "after temperature scaling"))):
            rows = [r for r in reliability.get(which) or [] if r.get("n")]
            ece = reliability.get(f"ece_{which}")
            text = f"{label} (ECE {ece:.3f})" if ece is not None else label
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="os"[i],
                    color=PALETTE[i], linewidth=1.5, label=text)
        ax.set_xlabel("mean top-class confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("Reliability", fontsize=10)
    return out[0]


def confusion_svg(confusion: Sequence[Sequence[int]], class_keys: Sequence[str]) -> str:
    """``confusion[true][predicted]``, shaded by row share so rare classes' errors show."""
    cm = np.asarray(confusion, dtype=np.float64)
    keep = [i for i in range(len(class_keys)) if cm[i].sum() > 0 or cm[:, i].sum() > 0]
    keys = [class_keys[i] for i in keep]
    cm = cm[np.ix_(keep, keep)] if keep else cm
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = 2.0 + 0.55 * max(len(keys), 2)
    with svg_figure(side + 1.0, side) as (fig, out):
        ax = fig.add_subplot()
        if not keys:
            _empty(ax, "no cases")
        else:
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for i in range(len(keys)):
                for j in range(len(keys)):
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "black")
            names = [_name(k) for k in keys]
            ax.set_xticks(range(len(keys)), names, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(len(keys)), names, fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        ax.set_title("Confusion matrix (shade: share of the true class)", fontsize=10)
    return out[0]


def _interval_rows(cells: Sequence[tuple[str, Sequence[float | None] | None]]) -> list[tuple[str, float, float, float]]:
    rows = []
    for label, cell in cells:
        if cell and cell[0] is not None:
            point = float(cell[0])
            lo = float(cell[1]) if cell[1] is not None else point
            hi = float(cell[2]) if cell[2] is not None else point
            rows.append((label, point, lo, hi))
    return rows


def per_class_metrics_svg(intervals: Mapping[str, Any],
                          metrics: Sequence[str] = ("sensitivity", "specificity", "f1", "auc")) -> str:
    """Per-class points with 95 % intervals (``card.bootstrap_figures`` per_class cells),
    one marker per metric; classes without images are left out."""
    per_class = {k: v for k, v in (intervals.get("per_class") or {}).items() if v.get("n")}
    keys = list(per_class)
    height = 1.4 + 0.45 * max(len(keys), 1)
    with svg_figure(6.4, height) as (fig, out):
        ax = fig.add_subplot()
        if not keys:
            _empty(ax, "no classes with images")
        offsets = np.linspace(-0.3, 0.3, len(metrics))
        for m, metric in enumerate(metrics):
            ys, xs, lows, highs = [], [], [], []
            for y, key in enumerate(keys):
                cell = per_class[key].get(metric)
                if cell and cell[0] is not None:
                    ys.append(y + offsets[m])
                    xs.append(cell[0])
                    lows.append(cell[0] - (cell[1] if cell[1] is not None else cell[0]))
                    highs.append((cell[2] if cell[2] is not None else cell[0]) - cell[0])
            if xs:
                ax.errorbar(xs, ys, xerr=[lows, highs], fmt="o", markersize=3, capsize=2,
                            color=PALETTE[m % len(PALETTE)], label=metric)
        ax.set_yticks(range(len(keys)), [f"{_name(k)} (n={per_class[k]['n']})" for k in keys], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("value with 95 % bootstrap interval")
        if keys:
            fig.legend(fontsize=7, loc="outside lower center", ncols=len(metrics))
        ax.set_title("Per-class figures", fontsize=10)
    return out[0]


def differences_svg(paired: Mapping[str, Any], *, urgent_threshold: float | None = None) -> str:
    """Challenger - champion with paired 95 % intervals: CXR macro-F1, accuracy and each
    class's sensitivity/specificity; ``urgent_threshold`` (e.g. -0.02) draws the gate's line."""
    cells: list[tuple[str, Sequence[float | None] | None]] = [
        ("CXR macro-F1", (paired.get("macro_f1_cxr4") or {}).get("diff")),
        ("accuracy", (paired.get("accuracy") or {}).get("diff")),
    ]
    for key, cell in (paired.get("per_class") or {}).items():
        if cell.get("n"):
            cells.append((f"{_name(key)} sensitivity", cell["sensitivity"]["diff"]))
            cells.append((f"{_name(key)} specificity", cell["specificity"]["diff"]))
    rows = _interval_rows(cells)
    height = 1.3 + 0.32 * max(len(rows), 1)
    with svg_figure(6.4, height) as (fig, out):
        ax = fig.add_subplot()
        ax.axvline(0, color="#999999", linewidth=1)
        if urgent_threshold is not None:
            ax.axvline(urgent_threshold, color=PALETTE[1], linestyle="--", linewidth=1,
                       label=f"gate: lower bound >= {urgent_threshold:+.2f}")
        for y, (_label, point, lo, hi) in enumerate(rows):
            colour = PALETTE[2] if lo > 0 else (PALETTE[1] if hi < 0 else PALETTE[0])
            ax.errorbar([point], [y], xerr=[[point - lo], [hi - point]], fmt="o", markersize=3,
                        capsize=2, color=colour)
        if not rows:
            _empty(ax, "no figures to compare")
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("challenger - champion (paired 95 % interval)")
        if urgent_threshold is not None:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title("Differences", fontsize=10)
    return out[0]


def training_curves_svg(histories: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    """Loss curves (left) and accuracy / validation macro-F1 (right) per epoch, from the
    run's metric history: ``{"train_loss": [(step, value), ...], ...}``."""
    with svg_figure(7.0, 3.2) as (fig, out):
        left, right = fig.subplots(1, 2)
        drawn = 0
        for ax, names in ((left, ("train_loss", "val_loss")), (right, ("train_acc", "val_acc", "val_macro_f1"))):
            for i, name in enumerate(names):
                points = list(histories.get(name) or [])
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=2,
                            color=PALETTE[i], linewidth=1.3, label=name)
                    drawn += 1
            ax.set_xlabel("epoch")
            if ax.lines:
                ax.legend(fontsize=7)
        left.set_title("loss", fontsize=10)
        right.set_title("accuracy / macro-F1", fontsize=10)
        if not drawn:
            _empty(left, "the run logged no training curves")
    return out[0]
