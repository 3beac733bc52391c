"""Reads of continuous-training pipeline runs for the console."""

from __future__ import annotations

from django.db.models import QuerySet

from mlcore.models import PipelineRun


def pipeline_runs(*, limit: int = 50) -> QuerySet[PipelineRun]:
    return PipelineRun.objects.select_related("dataset_version", "training_job", "created_by")[:limit]
