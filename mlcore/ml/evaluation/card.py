"""The figures of a model card: per-class metrics with bootstrap intervals, per-source
figures, a reliability table, out-of-scope rates on in-scope and on non-medical images.

Everything is computed from one bundle on the dataset store it was trained on, scored as
served (``runner.scoped_probabilities``: scope decided by the model, as for a PNG upload).
Intervals are 95 % percentile intervals of 2,000 image-level bootstrap resamples with a fixed
seed; a figure that is undefined on a resample (no positives drawn) is left out of that
resample, and a figure undefined on the split itself is None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.ml.evaluation.calibration import softmax_with_temperature
from mlcore.ml.evaluation.metrics import (
    CXR4_KEYS,
    binary_auc,
    ece_sampling_floor,
    expected_calibration_error,
    reliability_table,
)
from mlcore.ml.evaluation.probes import FAMILIES, probe_images
from mlcore.ml.evaluation.runner import bundle_outputs, scoped_probabilities

RESAMPLES = 2000


def _class_figures(pred: np.ndarray, probs: np.ndarray, labels: np.ndarray, c: int
                   ) -> dict[str, float | None]:
    pos, hit = labels == c, pred == c
    tp, fn = int((hit & pos).sum()), int((~hit & pos).sum())
    fp, tn = int((hit & ~pos).sum()), int((~hit & ~pos).sum())
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fn else None,
        "auc": binary_auc(probs[:, c], pos) if 0 < pos.sum() < len(pos) else None,
    }


def _macro_cxr4(pred: np.ndarray, labels: np.ndarray, class_keys: Sequence[str]) -> float | None:
    f1s = []
    for key in CXR4_KEYS:
        if key in class_keys:
            c = class_keys.index(key)
            pos, hit = labels == c, pred == c
            if pos.any():
                tp = int((hit & pos).sum())
                f1s.append(2 * tp / (2 * tp + int((hit & ~pos).sum()) + int((~hit & pos).sum())))
    return float(np.mean(f1s)) if f1s else None


def bootstrap_figures(probs: np.ndarray, labels: np.ndarray, class_keys: Sequence[str], *,
                      resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Point figures and 95 % intervals: per class (sensitivity, specificity, F1, AUC) and
    the 4-class CXR macro-F1. Values are ``[point, low, high]`` (None where undefined)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    keys = list(class_keys)
    pred = probs.argmax(axis=1)
    n = len(labels)
    rng = np.random.default_rng(seed)
    draws: dict[tuple[str, str], list[float]] = defaultdict(list)
    macro: list[float] = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        p, pr, y = pred[idx], probs[idx], labels[idx]
        for c, key in enumerate(keys):
            for name, value in _class_figures(p, pr, y, c).items():
                if value is not None:
                    draws[(key, name)].append(value)
        m = _macro_cxr4(p, y, keys)
        if m is not None:
            macro.append(m)

    def interval(point: float | None, values: list[float]) -> list[float | None]:
        if point is None or not values:
            return [point, None, None]
        lo, hi = np.percentile(values, [2.5, 97.5])
        return [float(point), float(lo), float(hi)]

    per_class = {}
    for c, key in enumerate(keys):
        points = _class_figures(pred, probs, labels, c)
        per_class[key] = {"n": int((labels == c).sum()),
                          **{name: interval(v, draws[(key, name)]) for name, v in points.items()}}
    return {"n": n, "resamples": resamples, "seed": seed, "per_class": per_class,
            "macro_f1_cxr4": interval(_macro_cxr4(pred, labels, keys), macro),
            "accuracy": float((pred == labels).mean()) if n else None}


def per_source(pred: np.ndarray, labels: np.ndarray, sources: Sequence[str],
               class_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Per (true class, source): images, correct, sensitivity, and what the misses became."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for p, y, s in zip(pred, labels, sources, strict=True):
        key = (class_keys[int(y)], s)
        cell = cells.setdefault(key, {"class": key[0], "source": s, "n": 0, "correct": 0,
                                      "confused_with": defaultdict(int)})
        cell["n"] += 1
        if int(p) == int(y):
            cell["correct"] += 1
        else:
            cell["confused_with"][class_keys[int(p)]] += 1
    out = []
    for cell in sorted(cells.values(), key=lambda c: (c["class"], c["source"])):
        cell["sensitivity"] = cell["correct"] / cell["n"]
        cell["confused_with"] = dict(sorted(cell["confused_with"].items(), key=lambda kv: -kv[1]))
        out.append(cell)
    return out


def card_figures(bundle: Any, store: Any, *, splits: Sequence[str] = ("test", "final_eval"),
                 probes_per_family: int = 50, seed: int = 0) -> dict[str, Any]:
    """Every figure of the model card for ``bundle`` on ``store``'s held-out splits, plus the
    out-of-scope rates on generated non-medical probes (``probes.probe_images``)."""
    from mlcore.ml.predictor import Predictor  # predictor -> mlcore.ml.evaluation -> here: a circle at import

    keys = list(bundle.class_keys)
    out: dict[str, Any] = {"splits": {}}
    for split in splits:
        rows = list(store.rows(split))
        if not rows:
            continue
        outputs, labels = bundle_outputs(bundle, store, split)
        probs, decided = scoped_probabilities(bundle, outputs)
        raw = softmax_with_temperature(outputs.logits, 1.0)
        figures = bootstrap_figures(probs, labels, keys, seed=seed)
        figures["per_source"] = per_source(probs.argmax(axis=1), labels, [r.source for r in rows], keys)
        figures["reliability"] = reliability_table(probs, labels)
        figures["ece"] = expected_calibration_error(probs, labels)
        figures["ece_uncalibrated"] = expected_calibration_error(raw, labels)
        figures["ece_floor"] = ece_sampling_floor(probs, seed=seed)
        figures["scope_undecided_rate"] = float(1.0 - decided.mean())
        if bundle.ood is not None:
            flags, _, _ = bundle.ood.flag(outputs.embeddings, outputs.descriptors, outputs.input_std)
            figures["ood_flag_rate"] = float(flags.mean())
        out["splits"][split] = figures
    predictor = Predictor(bundle, version="card", model_uri="local")
    flagged: dict[str, list[bool]] = {f: [] for f in FAMILIES}
    for family, image in probe_images(probes_per_family, seed=seed):
        [result] = predictor.predict([image], explain=False)
        flagged[family].append(bool(result.out_of_scope))
    out["probes"] = {f: {"n": len(v), "flagged": int(sum(v))} for f, v in flagged.items()}
    total = sum(len(v) for v in flagged.values())
    out["probes_flag_rate"] = sum(sum(v) for v in flagged.values()) / total if total else None
    return out


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _floor(floor: dict | None, n: int) -> str:
    if not floor:
        return ""
    return (f"; a perfectly calibrated model with these confidences would show {_fmt(floor['median'])} on {n} "
            f"images (95 % of draws up to {_fmt(floor['p95'])}: above that is miscalibration, not chance)")


def _ci(cell: list[float | None] | None) -> str:
    if not cell or cell[0] is None:
        return "—"
    point, lo, hi = cell
    return f"{point:.3f}" if lo is None else f"{point:.3f} [{lo:.2f}, {hi:.2f}]"


def render_card_figures(bundle: Any, *, file_name: str = "", file_sha256: str = "") -> str:
    """The generated part of docs/model-card.md, from the figures stored in the bundle."""
    meta = bundle.metadata
    card = meta.get("card") or {}
    recipe = meta.get("recipe") or {}
    calib = meta.get("calibration") or {}
    lines = ["### Provenance", ""]
    lines += [
        f"- file: `{file_name}` (SHA-256 `{file_sha256[:16]}…`), variant `{bundle.model_name}` "
        f"at {bundle.image_size} px, intensity standardisation `{bundle.preprocess.intensity}`",
        f"- trained {meta.get('trained_at', '?')} on {meta.get('trained_on', '?')}, precision "
        f"`{meta.get('precision', recipe.get('precision', '?'))}`, {meta.get('epochs_run', '?')} "
        f"epochs, best epoch by val CXR macro-F1 ({_fmt(meta.get('best_val_macro_f1'))})",
        f"- code: commit `{meta.get('git_commit', '?')}`"
        + (" with uncommitted changes" if meta.get("git_dirty") else ""),
        *([f"- out-of-scope detector refitted on the same weights (train/val, serving preprocessing) at "
           f"{meta['ood_refit']['at']}, commit `{meta['ood_refit']['git_commit']}`"] if meta.get("ood_refit") else []),
        *([f"- figures below recomputed from the same file (weights unchanged) at {meta['figures_recomputed']['at']}, "
           f"commit `{meta['figures_recomputed']['git_commit']}`"] if meta.get("figures_recomputed") else []),
        f"- data: manifest hash `{str(meta.get('manifest_hash', '?'))[:16]}…`",
        "- recipe: " + ", ".join(f"{k}={recipe[k]}" for k in sorted(recipe)
                                 if k not in ("registered_model_name", "experiment", "run_name")),
        "",
        "| split | " + " | ".join(CLASS_BY_KEY) + " |",
        "|---|" + "---:|" * len(CLASS_BY_KEY),
    ]
    for split, counts in (meta.get("split_counts") or {}).items():
        lines.append(f"| {split} | " + " | ".join(str(counts.get(k, 0)) for k in CLASS_BY_KEY) + " |")
    for split, fig in (card.get("splits") or {}).items():
        lines += ["", f"### `{split}` (n={fig['n']}), scored as served (scope decided by the model)", "",
                  f"- CXR 4-class macro-F1: **{_ci(fig['macro_f1_cxr4'])}**; accuracy {_fmt(fig['accuracy'])}",
                  f"- ECE (15 bins) after temperature scaling: **{_fmt(fig['ece'])}** "
                  f"(without: {_fmt(fig.get('ece_uncalibrated'))})" + _floor(fig.get("ece_floor"), fig["n"]),
                  f"- flagged out of scope although in scope: {_fmt(100 * fig.get('ood_flag_rate', 0), 1)} %; "
                  f"scope undecided: {_fmt(100 * fig.get('scope_undecided_rate', 0), 1)} %", "",
                  "| class | n | sensitivity | specificity | F1 | AUC |", "|---|---:|---:|---:|---:|---:|"]
        for key, c in fig["per_class"].items():
            if c["n"] == 0:
                continue
            note = "" if key in CXR4_KEYS else " (too few images: meaningless)"
            lines.append(f"| {CLASS_BY_KEY[key].display_name}{note} | {c['n']} | {_ci(c['sensitivity'])} | "
                         f"{_ci(c['specificity'])} | {_ci(c['f1'])} | {_ci(c['auc'])} |")
    lines += ["", "Intervals: 95 % percentile bootstrap, 2,000 image-level resamples, seed 0.", "",
              "### Calibration", "",
              f"- temperature {_fmt(bundle.temperature)} fitted on `val` (ECE on val "
              f"{_fmt(calib.get('ece_before'))} before, {_fmt(calib.get('ece_after'))} after)"]
    final = (card.get("splits") or {}).get("final_eval") or (card.get("splits") or {}).get("test")
    if final:
        lines += ["", "Reliability on `final_eval` (top-class confidence):", "",
                  "| confidence | images | mean confidence | accuracy |", "|---|---:|---:|---:|"]
        for row in final["reliability"]:
            if row["n"]:
                lines.append(f"| {row['low']:.1f}–{row['high']:.1f} | {row['n']} | "
                             f"{_fmt(row['confidence'])} | {_fmt(row['accuracy'])} |")
    ood = bundle.ood
    lines += ["", "### Scope and out of scope", "",
              f"- scope (chest X-ray vs retinal OCT) from the header when it says so, else the model: "
              f"decided at ≥ {100 * bundle.scope_rule.threshold:.1f} % of the probability on one scope "
              f"(fitted on val: {_fmt(bundle.scope_rule.val_error)} wrong among decided)"]
    if ood is not None:
        lines.append(f"- out of scope: score above the {100 * ood.threshold_quantile:.0f}th percentile of "
                     f"in-scope val images (score {ood.threshold:.3f}), or a near-constant image")
    probes = card.get("probes") or {}
    if probes:
        parts = ", ".join(f"{f} {p['flagged']}/{p['n']}" for f, p in probes.items())
        rate = _fmt(100 * card["probes_flag_rate"], 1)
        lines.append(f"- generated non-medical images flagged: **{rate} %** ({parts})")
    if final and final.get("per_source"):
        lines += ["", "### Per source on `final_eval`", "",
                  "| class | source | n | correct | sensitivity | misses went to |", "|---|---|---:|---:|---:|---|"]
        for cell in final["per_source"]:
            missed = ", ".join(f"{k} {v}" for k, v in cell["confused_with"].items()) or "—"
            lines.append(f"| {cell['class']} | {cell['source'][:60]} | {cell['n']} | {cell['correct']} | "
                         f"{cell['sensitivity']:.2f} | {missed} |")
    return "\n".join(lines) + "\n"
