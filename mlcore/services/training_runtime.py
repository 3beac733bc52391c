"""What a running training job needs around ``train``: its log tail, a heartbeat thread
that stamps the row for the whole run, and the progress hooks (``on_epoch``, ``on_step``,
``should_stop``) that write short updates to the row. Used by
``mlcore.services.training_jobs.training_job_run`` only."""

from __future__ import annotations

import collections
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections
from django.utils import timezone

from mlcore.models import TrainingJob

logger = logging.getLogger("mlcore.services.training_jobs")

LOG_TAIL_LINES = 200


class LogTail:
    def __init__(self, text: str = "") -> None:
        self.lines: collections.deque[str] = collections.deque(
            text.splitlines(), maxlen=LOG_TAIL_LINES)

    def add(self, text: str) -> None:
        self.lines.extend(text.rstrip("\n").splitlines())

    def text(self) -> str:
        return "\n".join(self.lines)


class Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` every ``interval`` seconds on a connection of its own (Django
    gives each thread one), for the whole run: fitting, calibration and registration."""

    def __init__(self, job_id: int, interval: float) -> None:
        super().__init__(name=f"training-job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        try:
            while not self._done.wait(self.interval):
                try:
                    TrainingJob.objects.filter(pk=self.job_id, state=TrainingJob.State.RUNNING
                                               ).update(heartbeat_at=timezone.now())
                except DatabaseError:  # one missed stamp is not a dead worker; keep going
                    logger.warning("training job %s: heartbeat not written", self.job_id,
                                   exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


class JobProgress:
    """The hooks ``train`` calls, writing a running job's progress in short updates (no
    transaction is held across the run), plus its log tail with the warnings raised."""

    def __init__(self, job: TrainingJob, echo: Callable[[str], None] | None,
                 caught: list[warnings.WarningMessage]) -> None:
        self.job_id = job.pk
        self.echo = echo
        self.log = LogTail(job.log_tail)
        self.history: list[dict[str, Any]] = list(job.history)
        self._caught = caught
        self._seen: set[str] = set()

    def say(self, line: str) -> None:
        self.log.add(line)
        if self.echo is not None:
            self.echo(line)

    def drain_warnings(self) -> None:
        for w in self._caught:
            # Libraries' deprecation notices say nothing about this run (the server log
            # keeps them); what is left (data, numerics, Lightning's advice) goes in the log.
            if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning | FutureWarning):
                continue
            text = f"warning: {w.category.__name__}: {w.message}"
            if text not in self._seen:  # Lightning repeats some per epoch
                self._seen.add(text)
                self.say(text)
        self._caught.clear()

    def on_epoch(self, report: dict[str, Any]) -> None:
        from mlcore.ml.training.callbacks import format_epoch  # torch: loaded by train already

        self.history.append(dict(report))
        self.say(format_epoch(report))
        self.drain_warnings()
        TrainingJob.objects.filter(pk=self.job_id).update(
            history=self.history, epoch=int(report["epoch"]), epochs=int(report["epochs"]),
            log_tail=self.log.text())

    def on_step(self, report: dict[str, Any]) -> None:
        TrainingJob.objects.filter(pk=self.job_id).update(
            step=int(report["step"]), total_steps=int(report["total_steps"]),
            epochs=int(report["epochs"]))

    def should_stop(self) -> bool:
        return bool(TrainingJob.objects.filter(pk=self.job_id).values_list(
            "cancel_requested", flat=True).first())


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
