"""Lightning callbacks shared by local and Ray training."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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
            from mlflow import MlflowClient  # MLflow (seconds): only in the process that logs (rank 0)

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        from mlflow.entities import Metric  # MLflow: see _get_client

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


EpochReport = dict[str, float | int]


def format_epoch(report: EpochReport) -> str:
    """The progress line of one epoch, readable in a terminal and in a log."""
    parts = [f"epoch {report['epoch']}/{report['epochs']}"]
    for name in ("train_loss", "val_loss", "val_acc", "val_macro_f1"):
        if name in report:
            parts.append(f"{name} {report[name]:.4f}")
    parts.append(f"{report['seconds']:.0f} s")
    return "  ".join(parts)


def print_epoch(report: EpochReport) -> None:
    """The default progress output: one line per epoch."""
    print(format_epoch(report), flush=True)


class EpochReporter(L.Callback):
    """Calls ``report`` once per finished epoch (after its validation) on global rank 0 with
    the epoch number (1-based), the planned epochs, the epoch's wall time and the synced
    metrics -- the CLI prints it, a training job stores it for the console."""

    def __init__(self, report: Callable[[EpochReport], None]) -> None:
        super().__init__()
        self.report = report
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        out: EpochReport = {"epoch": int(trainer.current_epoch) + 1,
                            "epochs": int(trainer.max_epochs or 0),
                            "seconds": time.perf_counter() - self._started}
        for name, value in trainer.callback_metrics.items():
            v = float(value)
            if math.isfinite(v):
                out[name] = v
        self.report(out)


StepReport = dict[str, float | int]

# Progress and cancellation are for a person watching a page: a few seconds of delay are
# invisible there, while a database round trip per batch would slow small-batch training.
POLL_INTERVAL_S = 2.0


class StepReporter(L.Callback):
    """Calls ``report`` on global rank 0 at most every ``interval_s`` seconds (and for the
    very first batch, so a page shows movement at once) with the global step, the planned
    steps, the epoch (1-based) and the last batch's training loss."""

    def __init__(self, report: Callable[[StepReport], None], *,
                 interval_s: float = POLL_INTERVAL_S) -> None:
        super().__init__()
        self.report = report
        self.interval_s = interval_s
        self._last = -math.inf

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs, batch, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        total = trainer.estimated_stepping_batches
        out: StepReport = {
            "step": int(trainer.global_step),
            "total_steps": int(total) if math.isfinite(total) else 0,
            "epoch": int(trainer.current_epoch) + 1,
            "epochs": int(trainer.max_epochs or 0),
        }
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            v = float(loss)
            if math.isfinite(v):
                out["train_loss"] = v
        self.report(out)


class StopRequest(L.Callback):
    """Polls ``should_stop`` on global rank 0 (first batch, then at most every
    ``interval_s`` seconds); once it answers true the Trainer stops after the current batch
    and ``stopped`` stays true. Under DDP rank 0's decision is broadcast every batch, so all
    ranks stop at the same step (a rank that kept going would hang in the next all-reduce)."""

    def __init__(self, should_stop: Callable[[], bool], *,
                 interval_s: float = POLL_INTERVAL_S) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.interval_s = interval_s
        self.stopped = False
        self._last = -math.inf

    def _poll(self, trainer: L.Trainer) -> bool:
        if self.stopped:
            return True
        if trainer.is_global_zero:
            now = time.monotonic()
            if now - self._last >= self.interval_s:
                self._last = now
                return bool(self.should_stop())
        return False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs, batch, batch_idx: int) -> None:
        stop = self._poll(trainer)
        if trainer.world_size > 1:
            stop = bool(trainer.strategy.broadcast(stop, src=0))
        if stop:
            self.stopped = True
            trainer.should_stop = True
