"""The tail every training backend shares, run once in the driver after fit:

best checkpoint -> temperature fitted on val -> scope rule fitted on val -> OOD detector
(train Gaussians, val threshold) -> bundle written -> val, test and final_eval evaluated (as
served: scope first) -> everything logged to the MLflow run -> pyfunc model logged and
registered -> alias set.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.evaluation.calibration import calibration_summary, fit_temperature, softmax_with_temperature
from mlcore.ml.evaluation.inference import run_model
from mlcore.ml.evaluation.ood import OODDetector
from mlcore.ml.evaluation.runner import evaluate_bundle, log_evaluation, report_from_outputs
from mlcore.ml.scope import ScopeRule
from mlcore.ml.training.config import TrainConfig, TrainResult
from mlcore.ml.training.datamodule import RadDataModule

log = logging.getLogger(__name__)
VAL_PREFIX = "val_calibrated"


def finalize_training(
    *,
    config: TrainConfig,
    backbone: nn.Module,
    best_state: dict[str, torch.Tensor],
    dm: RadDataModule,
    store: object,
    run_id: str,
    fit_info: dict[str, Any],
) -> TrainResult:
    backbone.load_state_dict(best_state)
    backbone = backbone.float().cpu().eval()
    cfg = dm.preprocess

    x_train, y_train = dm.eval_inputs("train")
    x_val, y_val = dm.eval_inputs("val")
    out_train = run_model(backbone, x_train, mean=cfg.mean, std=cfg.std)
    out_val = run_model(backbone, x_val, mean=cfg.mean, std=cfg.std)

    temperature = fit_temperature(out_val.logits, y_val.numpy())
    calib = calibration_summary(out_val.logits, y_val.numpy(), temperature)
    scope_rule = ScopeRule.fit(softmax_with_temperature(out_val.logits, temperature),
                               y_val.numpy(), dm.class_keys)
    ood = OODDetector.fit(
        train_embeddings=out_train.embeddings, train_descriptors=out_train.descriptors,
        train_labels=y_train.numpy(), val_embeddings=out_val.embeddings,
        val_descriptors=out_val.descriptors,
    )

    arch = {k: v for k, v in backbone.default_cfg.items() if k != "name"}
    bundle = ModelBundle(
        model_name=config.model_name,
        model_overrides=arch,
        state_dict=backbone.state_dict(),
        class_keys=dm.class_keys,
        preprocess=cfg,
        temperature=temperature,
        ood=ood,
        scope_rule=scope_rule,
        metadata={
            "run_id": run_id,
            "manifest_hash": store.manifest_hash(),
            "store_uri": config.store_uri,
            "git_commit": tracking.git_commit(),
            "git_dirty": tracking.git_dirty(),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backend": config.backend,
            "split_counts": dm.split_counts(),
            "empty_train_classes": dm.empty_train_classes,
            "calibration": calib,
            "data_synthetic": _store_is_synthetic(store),
            "recipe": {k: v for k, v in config.to_dict().items()
                       if k not in ("tracking_uri", "store_uri", "output_dir", "progress")},
            **fit_info,
        },
    )
    out_dir = Path(config.output_dir) if config.output_dir else Path(
        tempfile.mkdtemp(prefix="radviewer-bundle-"))
    bundle_dir = bundle.save(out_dir / "bundle" if config.output_dir else out_dir)

    metrics: dict[str, float] = {f"calibration_{k}": v for k, v in calib.items()}
    val_report = report_from_outputs(bundle, out_val, y_val.numpy(), split="val")
    # "val_calibrated_*": the per-epoch curves already own the "val_*" names.
    metrics.update(val_report.flat_metrics(VAL_PREFIX))
    held_out = {}
    for split in ("test", "final_eval"):
        if len(dm.splits.get(split, [])) > 0:
            held_out[split] = evaluate_bundle(bundle, store, split, model=backbone)
            metrics.update(held_out[split].flat_metrics(split))
        elif split == "test":
            log.warning("the test split is empty: no test metrics for run %s", run_id)
    metrics["ood_threshold"] = ood.threshold
    metrics["scope_threshold"] = scope_rule.threshold

    tracking.log_metrics({k: v for k, v in metrics.items()
                          if k.startswith(("calibration_", "ood_", "scope_"))}, run_id=run_id)
    log_evaluation(val_report, run_id, prefix=VAL_PREFIX)
    for split, report in held_out.items():
        log_evaluation(report, run_id, prefix=split)
    if bundle.metadata["data_synthetic"]:
        tracking.client().set_tag(run_id, "radviewer.data_synthetic", "true")
    # The evaluations travel with the bundle, so a copy registered elsewhere (the starter
    # file under mlcore/starter/) logs the same figures without re-running them.
    bundle.metadata["evaluation"] = {VAL_PREFIX: val_report.to_dict(),
                                     **{k: r.to_dict() for k, r in held_out.items()}}
    bundle.save(bundle_dir)
    _log_data_report(store, run_id)
    _log_drift_reference(bundle, store, run_id, backbone, out_train.embeddings)

    model_uri, version = tracking.log_model_bundle(
        bundle_dir,
        image_size=cfg.image_size,
        class_keys=bundle.class_keys,
        preprocess=cfg.to_dict(),
        temperature=temperature,
        registered_model_name=config.registered_model_name if config.register else None,
    )
    if version is not None and config.alias:
        tracking.set_alias(config.registered_model_name, config.alias, version)
    tracking.client().set_tag(run_id, "radviewer.model_uri", model_uri)
    return TrainResult(run_id=run_id, model_version=version, metrics=metrics,
                       bundle_dir=str(bundle_dir))


def _log_drift_reference(bundle: ModelBundle, store: object, run_id: str, model: nn.Module,
                         train_embeddings: np.ndarray) -> None:
    """The version's drift reference (its val images: mlcore.ml.drift) as run artefact
    ``drift/reference.npz``. Without one the version's drift checks say "unavailable" (a
    tag on the run says why), so a failure here never fails the training run."""
    from mlcore.ml.drift.reference import (
        ARTIFACT_PATH,
        MIN_REFERENCE,
        ReferenceError,
        reference_from_store,
    )

    try:
        reference = reference_from_store(bundle, store, "val", model=model,
                                         projection_embeddings=(train_embeddings if len(
                                             train_embeddings) >= MIN_REFERENCE else None),
                                         meta={"run_id": run_id})
    except (ReferenceError, ValueError, OSError) as exc:
        log.warning("no drift reference for run %s: %s", run_id, exc)
        tracking.client().set_tag(run_id, "radviewer.drift_reference", f"missing: {exc}"[:500])
        return
    tracking.log_bytes(reference.to_bytes(), ARTIFACT_PATH, run_id=run_id)
    tracking.client().set_tag(run_id, "radviewer.drift_reference", f"val, {reference.n} images")


def _store_is_synthetic(store: object) -> bool:
    """True when any training row is a synthetic phantom (then the model is labelled so)."""
    rows = getattr(store, "rows", None)
    return bool(rows) and any(getattr(r, "synthetic", False) for r in rows("train"))


def _log_data_report(store: object, run_id: str) -> None:
    report = getattr(store, "split_report", None)
    if report is None:
        return
    try:
        text = report().to_markdown()
    except (ValueError, OSError) as exc:  # lineage is nice to have, never fatal
        log.warning("could not render the split report: %s", exc)
        return
    tracking.log_bytes(text.encode(), "data/split_report.md", run_id=run_id)
