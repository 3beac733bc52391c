"""Lightning callbacks shared by local and Ray training."""

from __future__ import annotations

import math
import time

import lightning as L


class MlflowEpochLogger(L.Callback):
    """Log ``trainer.callback_metrics`` (losses, accuracies, val macro-F1, lr) per epoch.

    Talks to MLflow through a client bound to ``tracking_uri`` and an existing ``run_id``
    instead of the fluent API, so it works in a Ray worker process too; only global rank 0
    logs (the metrics are already synced across ranks by ``sync_dist``).
    """

    def __init__(self, *, tracking_uri: str, run_id: str) -> None:
        super().__init__()
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client = None

    def _get_client(self):  # -> MlflowClient, imported lazily
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        step = int(trainer.current_epoch)
        metrics = []
        for name, value in trainer.callback_metrics.items():
            v = float(value)
            if math.isfinite(v):
                metrics.append(Metric(name, v, ts, step))
        if trainer.optimizers:
            metrics.append(Metric("lr", float(trainer.optimizers[0].param_groups[0]["lr"]), ts,
                                  step))
        if metrics:
            self._get_client().log_batch(self.run_id, metrics=metrics)
