"""Training entry point: ``train(TrainConfig(...)) -> TrainResult``.

Local backend: one Lightning Trainer (DDP across devices when more than one; Lightning
launches and syncs the ranks). Ray backend: see ``ray_train``. Both end in the same
calibrate/evaluate/register tail (``finalize``), run once, in the process that called train.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mlcore.ml.data import open_store
from mlcore.ml.training.callbacks import (
    EpochReport,
    EpochReporter,
    MlflowEpochLogger,
    StepReport,
    StepReporter,
    StopRequest,
    print_epoch,
)
from mlcore.ml.training.common import (
    backbone_state_from_checkpoint,
    build_backbone,
    build_datamodule,
    build_system,
    is_child_rank,
    quiet_lightning,
    run_params,
    trainer_kwargs,
    weight_averaging,
)
from mlcore.ml.training.config import TrainConfig, TrainResult
from mlcore.ml.training.precision import resolve_accelerator, resolve_precision

MONITOR = "val_macro_f1"


def train(config: TrainConfig, *, on_epoch: Callable[[EpochReport], None] | None = None,
          on_step: Callable[[StepReport], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train, calibrate, evaluate, bundle, log and register one model version.

    Local backend hooks, all called on global rank 0 only: ``on_epoch`` gets one report per
    finished epoch (without it, ``config.progress`` prints one line per epoch); ``on_step``
    gets ``{"step", "total_steps", "epoch", "epochs", "train_loss"}`` at most every ~2 s;
    ``should_stop`` is polled at most every ~2 s, and once it answers true the Trainer stops
    and ``train`` returns a result with ``cancelled=True`` -- nothing calibrated, bundled or
    registered, the MLflow run ended as KILLED.
    """
    if config.backend == "ray":
        if on_step is not None or should_stop is not None:
            raise ValueError("on_step and should_stop need the local backend")
        from mlcore.ml.training.ray_train import train_with_ray  # ray: the optional ray extra

        return train_with_ray(config)
    if on_epoch is None and config.progress:
        on_epoch = print_epoch
    return _train_local(config, on_epoch, on_step, should_stop)


def _train_local(config: TrainConfig, on_epoch: Callable[[EpochReport], None] | None,
                 on_step: Callable[[StepReport], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> TrainResult:
    # MLflow: the training package must import without it (a bare GPU box, a Ray worker)
    from mlcore.ml import tracking
    from mlcore.ml.training.finalize import finalize_training

    L.seed_everything(config.seed, workers=True, verbose=False)
    store = open_store(config.store_uri)
    backbone = build_backbone(config)
    dm = build_datamodule(config, store, int(backbone.default_cfg["img_size"]))
    dm.setup()  # before the MLflow run: a bad data set fails without leaving an empty run
    system = build_system(config, backbone, dm)
    accelerator = resolve_accelerator(config.devices)
    precision = resolve_precision(config.precision, accelerator)

    child = is_child_rank()
    if not child:
        tracking.configure(config.tracking_uri)
    run_ctx = contextlib.nullcontext() if child else tracking.start_run(
        experiment=config.experiment, run_name=config.run_name,
        tags={"radviewer.backend": "local", "radviewer.model_name": config.model_name,
              **config.run_tags},
        log_system_metrics=config.log_system_metrics,
    )
    with run_ctx as run, tempfile.TemporaryDirectory(prefix="radviewer-ckpt-") as ckpt_dir:
        run_id = run.info.run_id if run is not None else ""
        if run is not None:
            tracking.log_params(run_params(
                config, dm=dm, store=store, backbone=backbone, precision=precision,
                accelerator=accelerator), run_id=run_id)
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, monitor=MONITOR, mode="max", save_top_k=1,
                               save_weights_only=True, filename="best-{epoch}")
        callbacks: list[L.Callback] = [*weight_averaging(config), ckpt]
        if run is not None:
            callbacks.append(MlflowEpochLogger(tracking_uri=config.tracking_uri, run_id=run_id))
        if on_epoch is not None:
            callbacks.append(EpochReporter(on_epoch))
        if on_step is not None:
            callbacks.append(StepReporter(on_step))
        stopper = StopRequest(should_stop) if should_stop is not None else None
        if stopper is not None:
            callbacks.append(stopper)
        with quiet_lightning():
            trainer = L.Trainer(devices=config.devices, callbacks=callbacks,
                                strategy=_strategy(config.devices, accelerator),
                                default_root_dir=ckpt_dir,
                                **trainer_kwargs(config, precision=precision,
                                                 accelerator=accelerator))
            trainer.fit(system, datamodule=dm)
        if not trainer.is_global_zero or run is None:
            return TrainResult(run_id="", model_version=None, metrics={}, bundle_dir=None,
                               cancelled=bool(stopper and stopper.stopped))
        if stopper is not None and stopper.stopped:
            tracking.client(config.tracking_uri).set_tag(run_id, "radviewer.cancelled", "true")
            import mlflow  # MLflow: see the top of this function

            # Ended here so the run reads KILLED; the with-block leaves an ended run alone.
            mlflow.end_run(status="KILLED")
            return TrainResult(run_id=run_id, model_version=None, metrics={}, bundle_dir=None,
                               cancelled=True)
        best_path = ckpt.best_model_path
        best_state = backbone_state_from_checkpoint(best_path) if best_path else None
        fit_info = {
            "epochs_run": int(trainer.current_epoch),
            "best_val_macro_f1": None if ckpt.best_model_score is None
            else float(ckpt.best_model_score),
            "best_checkpoint": best_path.rsplit("/", 1)[-1] if best_path else None,
            "precision": precision,
        }
        return finalize_training(
            config=config, backbone=backbone,
            best_state=best_state if best_state is not None else backbone.state_dict(),
            dm=dm, store=store, run_id=run_id, fit_info=fit_info,
        )


def _num_devices(devices: int | str | list, accelerator: str) -> int:
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices >= 0:
        return devices
    # "auto" or -1: all GPUs, or one CPU process
    return torch.cuda.device_count() if accelerator == "gpu" else 1


def _strategy(devices: int | str | list, accelerator: str) -> str:
    """"ddp_spawn" for several devices when launched as a library call (Celery task, CLI):
    the default "ddp" launcher re-executes the calling script once per rank, which a worker
    process cannot do. Under torchrun every rank already runs ``train`` and Lightning
    detects it ("auto")."""
    if _num_devices(devices, accelerator) > 1 and "LOCAL_RANK" not in os.environ:
        return "ddp_spawn"
    return "auto"
