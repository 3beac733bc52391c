"""Django-side mirror of the MLflow registry, rollout policy and review outcomes.

MLflow is the source of truth for versions and aliases (DESIGN.md section 7); these rows are
a mirror for the UI, the audit trail and fast routing without a registry round trip.
"""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=20)
    run_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=60, blank=True)
    # Trained on synthetic phantoms (the demo): labelled so wherever the version is shown,
    # never a model for real images.
    synthetic = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "-registered_at")
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_model_version")]

    SYNTHETIC_LABEL = "synthetic demo — not for real images"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" + (f" ({self.SYNTHETIC_LABEL})" if self.synthetic else "")


class ModelAlias(models.Model):
    class Alias(models.TextChoices):
        PRODUCTION = "production", "Production"
        CANARY = "canary", "Canary"
        CANDIDATE = "candidate", "Candidate"

    name = models.CharField(max_length=100)
    alias = models.CharField(max_length=20, choices=Alias.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "alias"], name="unique_alias_per_model")]

    def __str__(self) -> str:
        return f"{self.name}@{self.alias} -> v{self.model_version.version}"


class RolloutPolicy(models.Model):
    """How studies are routed between production and canary for one registered model."""

    name = models.CharField(max_length=100, unique=True)
    canary_percent = models.PositiveSmallIntegerField(default=0)
    shadow_candidate = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: canary {self.canary_percent}%"


class ReviewOutcome(models.Model):
    """One reader verdict on one model prediction, as the model side needs it.

    Written by the clinical side through ``review_outcome_record`` (mlcore never reads
    clinical tables); agreement per model version and class is computed from these rows.
    """

    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=20)
    prediction_ref = models.CharField(max_length=64)  # opaque id from the caller
    predicted_class = models.CharField(max_length=40)
    confirmed_class = models.CharField(max_length=40, blank=True)  # "" for uncertain etc.
    verdict = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["model_name", "model_version"])]
        constraints = [
            models.UniqueConstraint(fields=["prediction_ref"], name="one_outcome_per_prediction")
        ]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.model_version} {self.predicted_class}->{self.confirmed_class}"
