"""Continuous-training pipeline runs: snapshot -> train -> evaluate -> candidate -> shadow,
then the admin's decision through the gate. Moved through their states by
``mlcore.services.pipeline`` and ``mlcore.services.pipeline_run`` only."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class PipelineRun(models.Model):
    class Trigger(models.TextChoices):
        MANUAL = "manual", "Admin's click"
        CORRECTIONS = "corrections", "Reader corrections"
        DRIFT = "drift", "Drift alarm"
        SCHEDULE = "schedule", "Schedule"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued (waiting for the run before it)"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Failed, retried later"
        SUCCEEDED = "succeeded", "Candidate in shadow (admin decides)"
        FAILED = "failed", "Failed"

    ACTIVE = (State.RUNNING, State.RETRYING)
    TERMINAL = (State.SUCCEEDED, State.FAILED)
    STEPS = ("snapshot", "train", "evaluate", "candidate", "shadow", "decision")

    name = models.CharField(max_length=100)  # the registered model
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)  # what fired it (counts, drift report)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # One dict per step in STEPS order: name, status (pending|running|done|failed|skipped),
    # started_at, finished_at (ISO), message, output (what a re-run reuses).
    steps = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)  # the run's current one-line situation
    dataset_version = models.ForeignKey("mlcore.DatasetVersion", null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="pipeline_runs")
    training_job = models.ForeignKey("mlcore.TrainingJob", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="pipeline_runs")
    model_version = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["name", "state"])]
        constraints = [
            # One at a time: at most one run in progress and one waiting per model.
            models.UniqueConstraint(fields=["name"], condition=Q(state__in=("running", "retrying")),
                                    name="one_active_pipeline_run"),
            models.UniqueConstraint(fields=["name"], condition=Q(state="queued"),
                                    name="one_queued_pipeline_run"),
        ]

    def __str__(self) -> str:
        return f"pipeline run {self.pk} ({self.trigger}, {self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL
