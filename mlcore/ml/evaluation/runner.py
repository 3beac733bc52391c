"""Evaluate a bundle on a split of a dataset store, and log reports to MLflow."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from mlcore.ml.evaluation.calibration import softmax_with_temperature
from mlcore.ml.evaluation.inference import ModelOutputs, run_model
from mlcore.ml.evaluation.metrics import EvaluationReport, compute_metrics
from mlcore.ml.evaluation.plots import confusion_matrix_png
from mlcore.ml.scope import apply_scope
from mlcore.ml.transforms import preprocess_batch

if TYPE_CHECKING:
    from mlcore.ml.bundle import ModelBundle


def bundle_outputs(bundle: ModelBundle, store: object, split: str, *,
                   model: nn.Module | None = None, chunk: int = 64) -> tuple[ModelOutputs,
                                                                             np.ndarray]:
    """Model outputs for every image of ``split`` (inference preprocessing) and the labels."""
    rows = list(store.rows(split))
    if not rows:
        raise ValueError(f"split {split!r} of {store!r} has no images to evaluate")
    index = {k: i for i, k in enumerate(bundle.class_keys)}
    missing = sorted({r.class_key for r in rows} - set(index))
    if missing:
        raise ValueError(f"split {split!r} has classes {missing} the model does not know "
                         f"(model classes: {list(bundle.class_keys)})")
    model = model if model is not None else bundle.build()
    cfg = bundle.preprocess
    parts = []
    for i in range(0, len(rows), chunk):
        x = preprocess_batch([store.read_image(r) for r in rows[i:i + chunk]], cfg)
        parts.append(run_model(model, x, mean=cfg.mean, std=cfg.std, batch_size=chunk))
    labels = np.array([index[r.class_key] for r in rows], dtype=np.int64)
    return ModelOutputs.concat(parts), labels


def scoped_probabilities(bundle: ModelBundle, out: ModelOutputs) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities restricted to each image's model-decided scope, as a PNG
    upload is served (no header to say the scope), and the decided-scope mask."""
    probs = softmax_with_temperature(out.logits, bundle.temperature)
    return apply_scope(probs, bundle.class_keys, bundle.scope_rule)


def report_from_outputs(bundle: ModelBundle, out: ModelOutputs, labels: np.ndarray, *,
                        split: str) -> EvaluationReport:
    """Scored as served: scope decided by the model (undecided images keep their argmax
    here and are counted in ``scope_undecided_rate``), then the scope's classes."""
    probs, decided = scoped_probabilities(bundle, out)
    extra: dict[str, float] = {"temperature": float(bundle.temperature),
                               "scope_undecided_rate": float(1.0 - decided.mean())}
    if bundle.ood is not None:
        flags, _, _ = bundle.ood.flag(out.embeddings, out.descriptors, out.input_std)
        extra["ood_flag_rate"] = float(flags.mean())
    return compute_metrics(probs, labels, class_keys=bundle.class_keys, split=split, extra=extra)


def evaluate_bundle(bundle: ModelBundle, store: object, split: str = "test", *,
                    model: nn.Module | None = None) -> EvaluationReport:
    """Calibrated metrics of ``bundle`` on ``split`` through the inference preprocessing.

    ``ood_flag_rate`` in ``extra`` is the share of these in-scope images the OOD detector
    would flag (its false-flag rate on this split).
    """
    out, labels = bundle_outputs(bundle, store, split, model=model)
    return report_from_outputs(bundle, out, labels, split=split)


def log_evaluation(report: EvaluationReport, run_id: str | None = None, *,
                   prefix: str | None = None, experiment: str | None = None) -> str:
    """Log metrics, the JSON + markdown report and the confusion-matrix PNG to MLflow.

    ``run_id=None``: the active run, else a new run in ``experiment`` (default: RadViewer's
    experiment, whose artifacts live next to a sqlite store, never in ``./mlruns``).
    Returns the run id used.
    """
    # MLflow (seconds): evaluating without logging (the card, the tests) does not load it
    import mlflow

    from mlcore.ml import tracking

    started = False
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            exp_id = tracking.ensure_experiment(experiment or tracking.DEFAULT_EXPERIMENT)
            active = mlflow.start_run(experiment_id=exp_id, run_name=f"evaluation-{report.split}")
            started = True
        run_id = active.info.run_id
    try:
        name = prefix if prefix is not None else report.split
        tracking.log_metrics(report.flat_metrics(name), run_id=run_id)
        doc = json.dumps(report.to_dict(), indent=2, sort_keys=True).encode()
        tracking.log_bytes(doc, f"evaluation/{name}.json", run_id=run_id)
        tracking.log_bytes(report.to_markdown().encode(), f"evaluation/{name}.md", run_id=run_id)
        png = confusion_matrix_png(np.asarray(report.confusion), report.class_keys)
        tracking.log_bytes(png, f"evaluation/{name}_confusion.png", run_id=run_id)
    finally:
        if started:
            mlflow.end_run()
    return run_id
