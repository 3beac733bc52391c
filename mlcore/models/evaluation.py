"""Evaluations (a version on an evaluation set) and the per-image prediction cache.

An evaluation is its own record: evaluating a version on another set never overwrites the
metrics the version was registered with. The locked set of a dataset version is its
``final_eval`` split plus the confirmed feedback cases not used in training; ``set_hash``
(sha256 over the sorted image hashes and labels) says exactly which images were scored, so
two evaluations with the same hash are comparable pair by pair.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Evaluation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    model_version = models.ForeignKey("mlcore.ModelVersion", on_delete=models.CASCADE,
                                      related_name="evaluations")
    dataset_version = models.ForeignKey("mlcore.DatasetVersion", on_delete=models.PROTECT,
                                        related_name="evaluations")
    # "locked" (final_eval + unused feedback), or one split name.
    set_name = models.CharField(max_length=40, default="locked")
    set_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    n = models.PositiveIntegerField(default=0)
    # EvaluationReport.to_dict() plus intervals, ROC points, reliability before/after
    # temperature scaling and out-of-scope rates (see mlcore.services.evaluations).
    report = models.JSONField(default=dict, blank=True)
    # name -> SVG text, rendered once when the evaluation finishes (cached plots).
    plots = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["model_version", "dataset_version", "set_name"])]

    def __str__(self) -> str:
        return f"evaluation {self.pk}: {self.model_version} on {self.dataset_version.slug}/{self.set_name}"


class PredictionCache(models.Model):
    """What one version predicts for one image (by pixel hash): calibrated, scoped
    probabilities in class-key order, so comparisons and re-evaluations skip the model."""

    model_version = models.ForeignKey("mlcore.ModelVersion", on_delete=models.CASCADE,
                                      related_name="cached_predictions")
    image_sha256 = models.CharField(max_length=64)
    probabilities = models.JSONField()  # list[float], the model's class-key order
    raw_probabilities = models.JSONField(default=list)  # before temperature scaling
    top_class = models.CharField(max_length=40)
    scope = models.CharField(max_length=8, blank=True)
    out_of_scope = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "image_sha256"],
                                               name="one_cached_prediction_per_version_image")]

    def __str__(self) -> str:
        return f"{self.model_version} {self.image_sha256[:12]}: {self.top_class}"
