"""Drift: the compact per-study features a drift check reads, and the checks' reports.

``DriftObservation`` is keyed by an opaque reference from the caller (the clinical side
passes ``prediction:<id>``; mlcore never reads clinical tables): one row per prediction,
written by ``mlcore.services.drift.drift_observation_record`` right after the prediction is
stored. ``DriftReport`` is one detector's verdict on one window for one version, written by
``mlcore.services.drift.drift_check_run`` (beat task ``mlcore.drift_check``).
"""

from __future__ import annotations

from django.db import models


class DriftObservation(models.Model):
    ref = models.CharField(max_length=100, unique=True)
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=20)
    arm = models.CharField(max_length=16, blank=True)
    # float32 little-endian: 20 image features, then the CLS embedding (mlcore.ml.drift.features)
    features = models.BinaryField()
    # predicted class as served, or "out_of_scope"
    category = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        indexes = [models.Index(fields=["model_name", "model_version", "-id"],
                                name="drift_obs_version_idx")]

    def __str__(self) -> str:
        return f"drift observation {self.ref} (v{self.model_version})"


class DriftReport(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "Tested"
        WAITING = "waiting", "Waiting for studies"
        UNAVAILABLE = "unavailable", "Unavailable (no reference)"
        ERROR = "error", "Failed"

    name = models.CharField(max_length=100)  # registered model name
    model_version = models.CharField(max_length=20)
    detector = models.CharField(max_length=20)  # mmd | ks | label_shift
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    # None unless status is "ok": a missing reference is "unavailable", never a zero.
    statistic = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    alpha = models.FloatField(default=0.05)
    alarm = models.BooleanField(default=False)
    window_size = models.PositiveIntegerField(default=0)  # studies actually tested (or available)
    window_target = models.PositiveIntegerField(default=0)  # the configured window
    # id of the newest observation in the window: a check with nothing new is not repeated
    window_end = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["name", "model_version", "detector", "-created_at"],
                                name="drift_report_version_idx")]

    def __str__(self) -> str:
        return f"drift {self.detector} v{self.model_version}: {self.status}"
