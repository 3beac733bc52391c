"""Reads of the training pages: jobs, their progress and the dataset versions to train on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from mlcore.models import DatasetVersion, TrainingJob


def training_jobs(*, limit: int = 100) -> QuerySet[TrainingJob]:
    """Newest first, with what the list shows (dataset, who)."""
    return TrainingJob.objects.select_related("dataset_version", "created_by")[:limit]


def training_job_get(*, pk: int) -> TrainingJob:
    """The job or 404."""
    return get_object_or_404(
        TrainingJob.objects.select_related("dataset_version", "created_by"), pk=pk)


def dataset_versions_for_training() -> QuerySet[DatasetVersion]:
    """Every dataset version, so that choosing one that cannot be trained on (still
    importing, evaluation-only, empty) is answered with the reason rather than hidden."""
    return DatasetVersion.objects.order_by("-created_at")


@dataclass(frozen=True)
class TrainingProgress:
    epoch: int
    epochs: int
    step: int
    total_steps: int
    percent: int
    mean_epoch_s: float | None
    eta_s: float | None
    eta_at: datetime | None
    last_train_loss: float | None
    last_val_macro_f1: float | None
    best_val_macro_f1: float | None


def training_job_progress(job: TrainingJob) -> TrainingProgress:
    """Epoch x/y, step, and an ETA from the mean epoch time so far (the finished epochs'
    own wall times, so time spent queued or loading data does not count)."""
    history = [h for h in job.history if isinstance(h, dict)]
    seconds = [float(h["seconds"]) for h in history if "seconds" in h]
    mean = sum(seconds) / len(seconds) if seconds else None
    epochs = job.epochs or int(job.config.get("epochs", 0) or 0)
    eta = None
    eta_at = None
    if mean is not None and not job.is_terminal and epochs:
        eta = max(0.0, (epochs - job.epoch) * mean)
        eta_at = timezone.now() + timedelta(seconds=eta)
    if job.total_steps:
        percent = round(100 * min(job.step, job.total_steps) / job.total_steps)
    else:
        percent = round(100 * job.epoch / epochs) if epochs else 0
    if job.state == TrainingJob.State.SUCCEEDED:
        percent = 100
    f1s = [float(h["val_macro_f1"]) for h in history if "val_macro_f1" in h]
    losses = [float(h["train_loss"]) for h in history if "train_loss" in h]
    return TrainingProgress(
        epoch=job.epoch, epochs=epochs, step=job.step, total_steps=job.total_steps,
        percent=percent, mean_epoch_s=mean, eta_s=eta, eta_at=eta_at,
        last_train_loss=losses[-1] if losses else None,
        last_val_macro_f1=f1s[-1] if f1s else None,
        best_val_macro_f1=max(f1s) if f1s else None,
    )
