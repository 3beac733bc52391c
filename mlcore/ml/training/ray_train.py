"""The same training under Ray Train (TorchTrainer + ray.train.lightning), for scale-out.

Each Ray worker builds its own data module from the store URI (the store is the data
boundary: workers read the manifest and images themselves), runs Lightning with
RayDDPStrategy, logs per-epoch metrics to the driver's MLflow run (rank 0) and reports a
checkpoint per epoch to Ray, which keeps the best by ``val_macro_f1``. The driver then loads
that checkpoint and runs the same calibrate/evaluate/register tail as local training.

On a cluster (``config.ray_address``) the checkpoints live in ``config.ray_storage_path``, a
store every node sees. When a node dies, Ray restarts the worker group (up to
``config.ray_max_failures`` times) and each worker resumes Lightning from the last reported
checkpoint, so a lost node costs at most the epoch in flight. Each (re)start of rank 0 is
recorded in the storage folder and returned in ``fit_info["ray_starts"]`` (the epoch it
started from).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from mlcore.ml import tracking
from mlcore.ml.training.config import TrainConfig, TrainResult

MONITOR = "val_macro_f1"


def _train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Runs in every Ray worker process."""
    # Imported in the Ray worker, which gets this function by reference: Ray is an optional extra
    import lightning as L
    import ray.train
    import torch
    from ray.train.lightning import (
        RayDDPStrategy,
        RayLightningEnvironment,
        RayTrainReportCallback,
        prepare_trainer,
    )

    from mlcore.ml.data import open_store
    from mlcore.ml.training.callbacks import MlflowEpochLogger
    from mlcore.ml.training.common import (
        build_backbone,
        build_datamodule,
        build_system,
        quiet_lightning,
        trainer_kwargs,
        weight_averaging,
    )

    config = TrainConfig.from_dict(loop_config["config"])
    threads = int(loop_config.get("torch_threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    store = open_store(config.store_uri)
    backbone = build_backbone(config)
    dm = build_datamodule(config, store, int(backbone.default_cfg["img_size"]))
    dm.setup()
    system = build_system(config, backbone, dm)
    callbacks: list[L.Callback] = [*weight_averaging(config), RayTrainReportCallback()]
    if loop_config.get("run_id"):
        callbacks.append(MlflowEpochLogger(tracking_uri=config.tracking_uri,
                                           run_id=loop_config["run_id"]))
    kw = trainer_kwargs(config, precision=loop_config["precision"],
                        accelerator=loop_config["accelerator"])
    with quiet_lightning(not config.progress):
        trainer = L.Trainer(devices="auto", strategy=RayDDPStrategy(),
                            plugins=[RayLightningEnvironment()], callbacks=callbacks,
                            enable_checkpointing=False, **kw)
        trainer = prepare_trainer(trainer)
        checkpoint = ray.train.get_checkpoint()  # set when the group restarts after a failure
        if checkpoint is None:
            _record_start(loop_config, 0)
            trainer.fit(system, datamodule=dm)
            return
        with checkpoint.as_directory() as ckpt_dir:
            path = os.path.join(ckpt_dir, "checkpoint.ckpt")
            # Reported at the end of an epoch: Lightning goes on with the next one.
            saved = torch.load(path, map_location="cpu", weights_only=False)
            _record_start(loop_config, int(saved["epoch"]) + 1)
            trainer.fit(system, datamodule=dm, ckpt_path=path)


def _record_start(loop_config: dict[str, Any], epoch: int) -> None:
    """Rank 0 notes the epoch the loop (re)starts at (0 = from scratch)."""
    import ray.train

    starts = loop_config.get("starts_file")
    if starts and ray.train.get_context().get_world_rank() == 0:
        with open(starts, "a") as fh:
            fh.write(f"{epoch}\n")


def _ensure_ray(num_workers: int, address: str = "") -> None:
    import ray  # the optional ray extra: only for --backend ray

    if ray.is_initialized():
        return
    if address:  # join the cluster; its nodes bring their own CPUs and GPUs
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True, runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})
        return
    ray.init(
        num_cpus=max(2, num_workers),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )


def train_with_ray(config: TrainConfig) -> TrainResult:
    # ray is the optional ray extra (only for --backend ray); the rest as in _train_loop_per_worker
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mlcore.ml.data import open_store
    from mlcore.ml.training.common import (
        backbone_state_from_checkpoint,
        build_backbone,
        build_datamodule,
        run_params,
    )
    from mlcore.ml.training.finalize import finalize_training
    from mlcore.ml.training.precision import resolve_precision

    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "0")
    store = open_store(config.store_uri)
    backbone = build_backbone(config)
    dm = build_datamodule(config, store, int(backbone.default_cfg["img_size"]))
    dm.setup()  # fail fast on bad data before starting a cluster; reused by the tail
    accelerator = "gpu" if config.ray_use_gpu else "cpu"
    precision = resolve_precision(config.precision, accelerator)

    _ensure_ray(config.num_workers_ray, config.ray_address)
    tracking.configure(config.tracking_uri)
    with tracking.start_run(
        experiment=config.experiment, run_name=config.run_name,
        tags={"radviewer.backend": "ray", "radviewer.model_name": config.model_name,
              **config.run_tags},
        log_system_metrics=config.log_system_metrics,
    ) as run, tempfile.TemporaryDirectory(prefix="radviewer-ray-") as local_storage:
        run_id = run.info.run_id
        storage = config.ray_storage_path or local_storage
        starts_file = (os.path.join(storage, f"radviewer-{run_id}.starts")
                       if "://" not in storage else None)
        params = run_params(config, dm=dm, store=store, backbone=backbone, precision=precision,
                            accelerator=accelerator)
        params["ray.num_workers"] = str(config.num_workers_ray)
        tracking.log_params(params, run_id=run_id)
        cpus = os.cpu_count() or 1
        trainer = TorchTrainer(
            train_loop_per_worker=_train_loop_per_worker,
            train_loop_config={
                "config": config.to_dict(),
                "run_id": run_id,
                "precision": precision,
                "accelerator": accelerator,
                "torch_threads": max(1, cpus // config.num_workers_ray),
                "starts_file": starts_file,
            },
            scaling_config=ScalingConfig(num_workers=config.num_workers_ray,
                                         use_gpu=config.ray_use_gpu,
                                         resources_per_worker={"CPU": 1}),
            run_config=RunConfig(
                name=f"radviewer-{run_id}",
                storage_path=storage,
                # The best by the monitor for the result, and the latest for a resume.
                checkpoint_config=CheckpointConfig(
                    num_to_keep=2, checkpoint_score_attribute=MONITOR,
                    checkpoint_score_order="max"),
                failure_config=FailureConfig(max_failures=config.ray_max_failures),
            ),
        )
        result = trainer.fit()
        best = result.get_best_checkpoint(metric=MONITOR, mode="max") or result.checkpoint
        if best is None:
            raise RuntimeError(f"Ray training reported no checkpoint (error: {result.error})")
        with best.as_directory() as ckpt_dir:
            best_state = backbone_state_from_checkpoint(os.path.join(ckpt_dir, "checkpoint.ckpt"))
        metrics = result.metrics or {}
        fit_info = {
            "epochs_run": int(metrics.get("epoch", -1)) + 1,
            "best_val_macro_f1": _best_score(result),
            "precision": precision,
            "ray_workers": config.num_workers_ray,
            "ray_cluster": bool(config.ray_address),
        }
        if starts_file and os.path.exists(starts_file):
            with open(starts_file) as fh:
                fit_info["ray_starts"] = [int(line) for line in fh if line.strip()]
        return finalize_training(config=config, backbone=backbone, best_state=best_state, dm=dm,
                                 store=store, run_id=run_id, fit_info=fit_info)


def _best_score(result: Any) -> float | None:
    for _, metrics in getattr(result, "best_checkpoints", None) or []:
        if MONITOR in metrics:
            return float(metrics[MONITOR])
    return None
