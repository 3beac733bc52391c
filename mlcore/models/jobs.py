"""Training jobs: one row per request to train a model, from the console, the CLI or
continuous training, moved through its states by ``mlcore.services.training_jobs`` only."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # TrainConfig.to_dict() (the whole recipe, JSON), as validated when the job was created.
    config = models.JSONField(default=dict)
    dataset_version = models.ForeignKey("mlcore.DatasetVersion", null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="training_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_label = models.CharField(max_length=100, blank=True)  # "cli:train_model", ...
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Live progress: epoch x of y, step within the run, and one dict per finished epoch
    # (train_loss, val_loss, val_macro_f1, seconds) for the curves.
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    history = models.JSONField(default=list, blank=True)
    log_tail = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    run_id = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=20, blank=True)
    failure_reason = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL
