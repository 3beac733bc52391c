"""Pieces shared by local and Ray training: building the parts, run parameters, checkpoints,
and quieting Lightning's chatter."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlcore.ml.models import build_model
from mlcore.ml.training.config import TrainConfig
from mlcore.ml.training.datamodule import RadDataModule
from mlcore.ml.training.system import ClassifierSystem
from mlcore.ml.transforms import TrainAugment


def is_child_rank() -> bool:
    """True in the extra processes a DDP launcher starts (they must not open MLflow runs)."""
    return any(int(os.environ.get(v, "0") or 0) > 0 for v in ("LOCAL_RANK", "NODE_RANK"))


def build_backbone(config: TrainConfig) -> nn.Module:
    return build_model(config.model_name, **config.backbone_overrides)


def build_datamodule(config: TrainConfig, store: object, image_size: int) -> RadDataModule:
    augment = TrainAugment(noise_std_max=config.augment_noise,
                           downscale_max=config.augment_downscale) if config.augment else False
    return RadDataModule(
        store,
        image_size=image_size,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        augment=augment,
        include_feedback=config.include_feedback,
        seed=config.seed,
        class_weighting=config.class_weighting,
        intensity=config.intensity,
        source_balance=config.source_balance,
    )


def build_system(config: TrainConfig, backbone: nn.Module, dm: RadDataModule) -> ClassifierSystem:
    return ClassifierSystem(
        backbone=backbone,
        lr=config.lr,
        weight_decay=config.weight_decay,
        warmup_epochs=config.warmup_epochs,
        max_epochs=config.epochs,
        class_weights=dm.class_weights,
        class_keys=dm.class_keys,
        label_smoothing=config.label_smoothing,
        mixup_alpha=config.mixup_alpha,
        focal_gamma=config.focal_gamma,
        monitor_min_support=config.monitor_min_support,
    )


def weight_averaging(config: TrainConfig) -> list:
    """The EMA callback when ``config.ema_decay`` is set: validation and checkpoints see the
    averaged weights once averaging has started (``config.ema_start_epoch``), and fit ends
    with them."""
    if config.ema_decay is None:
        return []
    return [delayed_ema(decay=config.ema_decay, start_epoch=config.ema_start_epoch)]


def delayed_ema(*, decay: float, start_epoch: int):
    """Lightning's EMAWeightAveraging, started at ``start_epoch`` and invisible before.

    Lightning's own ``update_starting_at_epoch`` does not hold back the per-step updates (its
    step rule fires whenever ``update_starting_at_step`` is unset), and before the first
    update it validates and checkpoints the weights the averaged copy was made from (the
    random initialisation). Here the average starts from the weights of ``start_epoch``,
    validation sees the trained weights until then, and a checkpoint holds the averaged
    weights only once there are some.
    """
    # Only with EMA: not every Lightning that pyproject accepts has it.
    from lightning.pytorch.callbacks import EMAWeightAveraging

    class DelayedEMA(EMAWeightAveraging):
        def __init__(self) -> None:
            super().__init__(decay=decay)
            self.start_epoch = start_epoch
            self._epoch = 0
            self._swapped = False

        def _started(self) -> bool:
            return self._average_model is not None and int(self._average_model.n_averaged) > 0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._epoch = trainer.current_epoch

        def should_update(self, step_idx=None, epoch_idx=None) -> bool:
            return step_idx is not None and self._epoch >= self.start_epoch

        def on_validation_epoch_start(self, trainer, pl_module) -> None:
            if self._started():
                self._swap_models(pl_module)
                self._swapped = True

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            if self._swapped:
                self._swap_models(pl_module)
                self._swapped = False

        def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
            if self._started():
                super().on_save_checkpoint(trainer, pl_module, checkpoint)

        def on_train_end(self, trainer, pl_module) -> None:
            if self._started():
                super().on_train_end(trainer, pl_module)

    return DelayedEMA()


def trainer_kwargs(config: TrainConfig, *, precision: str, accelerator: str) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "accelerator": accelerator,
        "precision": precision,
        "max_epochs": config.epochs,
        "logger": False,
        # One line per epoch (EpochReporter) instead of tqdm bars, which bury a log.
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "gradient_clip_val": config.gradient_clip_val,
    }
    if config.max_train_batches is not None:
        kw["limit_train_batches"] = config.max_train_batches
    if config.max_time_s is not None:
        kw["max_time"] = {"seconds": float(config.max_time_s)}
    return kw


def backbone_state_from_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Backbone weights from a Lightning checkpoint written by THIS training run.

    ``weights_only=False`` because Lightning stores hyper-parameters as an ``AttributeDict``;
    the file was produced moments ago by this process (or its Ray workers), never downloaded.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"checkpoint {path} holds no backbone weights")
    return state


def run_params(config: TrainConfig, *, dm: RadDataModule, store: object, backbone: nn.Module,
               precision: str, accelerator: str) -> dict[str, str]:
    """Everything needed to reproduce or audit the run, as MLflow params."""
    from mlcore.ml import tracking  # MLflow: the training package imports without it (see train)

    params: dict[str, Any] = {k: v for k, v in config.to_dict().items()
                              if k not in ("model_overrides", "tracking_uri")}
    params["model_overrides"] = config.model_overrides
    params["arch"] = dict(backbone.default_cfg)
    params["n_parameters"] = sum(p.numel() for p in backbone.parameters())
    params["precision_resolved"] = precision
    params["accelerator"] = accelerator
    params["data"] = {
        "manifest_hash": store.manifest_hash(),
        "counts": dm.split_counts(),
        "empty_train_classes": ",".join(dm.empty_train_classes) or "none",
        "class_weights": [round(float(w), 4) for w in dm.class_weights.tolist()],
        "preprocess": dm.preprocess.to_dict(),
    }
    params["git_commit"] = tracking.git_commit()
    params["torch_version"] = torch.__version__
    return tracking.flatten_params(params)


@contextlib.contextmanager
def quiet_lightning(enabled: bool = True) -> Iterator[None]:
    """Silence Lightning's informational chatter (GPU available..., num_workers hints)."""
    if not enabled:
        yield
        return
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*_pytree.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        try:
            yield
        finally:
            for lg, lvl in zip(loggers, levels, strict=True):
                lg.setLevel(lvl)
