"""A small registry for the promotion tests: three real MLflow versions of the tiny test
model and stored evaluations (the gate's inputs) made directly."""

from __future__ import annotations

import pytest
from django.utils import timezone

from mlcore.models import DatasetVersion, Evaluation, ModelVersion
from mlcore.services.registry import registry_sync
from tests.support.models import register_random_model

NAME = "radviewer-triage"


@pytest.fixture(name="registry")
def registry_fixture(settings, tmp_path):
    """Three versions in a fresh MLflow store: v1 in production (registered directly in
    MLflow, like the starter model), v2 and v3 without an alias."""
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_REGISTERED_MODEL = NAME
    register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name=NAME)
    for seed in (1, 2):
        register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name=NAME, alias=None, seed=seed)
    registry_sync(name=NAME)
    return settings


def evaluate(version: str, *, ece: float = 0.03) -> Evaluation:
    dataset, _ = DatasetVersion.objects.get_or_create(slug="locked-set", defaults={"store_uri": "/nonexistent/locked"})
    return Evaluation.objects.create(
        model_version=ModelVersion.objects.get(name=NAME, version=version), dataset_version=dataset,
        set_name="locked", status=Evaluation.Status.SUCCEEDED, n=120, report={"ece": ece},
        finished_at=timezone.now(),
    )


