"""Dataset versions: the stores the ML admin trains and evaluates on, and their imports."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DatasetVersion(models.Model):
    """One dataset store (``<root>/<split>/<class-key>/<image>`` + manifest) known to the app.

    Created by an import (UI or ``manage.py import_dataset``), which runs on the training
    queue and fills the progress fields, or by registering an existing store (the app's
    current store, the starter model's real-cxr store). ``kind=evaluation`` sets hold every
    image in ``final_eval`` and are never trained on: a hospital measures a version on its
    own images with them.
    """

    class Kind(models.TextChoices):
        TRAINING = "training", "Training (train/val/test/final_eval)"
        EVALUATION = "evaluation", "Evaluation only (never trained on)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IMPORTING = "importing", "Importing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRAINING)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    store_uri = models.CharField(max_length=500, unique=True)
    # Where an import read from and how (scanner format, seed, near-duplicate distance).
    source_path = models.CharField(max_length=500, blank=True)
    source_format = models.CharField(max_length=40, blank=True)
    options = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    manifest_hash = models.CharField(max_length=64, blank=True)
    # The split report (counts per split x class, patients, sources, duplicates, skipped
    # files with their reasons), as computed from the manifest when the import finished.
    report = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.slug} ({self.get_kind_display()})"
