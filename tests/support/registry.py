"""A small registry for the promotion tests: three real MLflow versions of the tiny test
model and stored evaluations (the gate's inputs) made directly."""

from __future__ import annotations

import pytest
from django.utils import timezone

from mlcore.models import DatasetVersion, Evaluation, ModelAlias, ModelVersion
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


SET_HASH = "5e7" * 21 + "5"  # one locked set for every stored evaluation here


def evaluate(version: str, *, ece: float = 0.03, sensitivity_low: float = 0.0, f1_diff: float = 0.0) -> Evaluation:
    """A finished locked-set evaluation of ``version``, plus the paired comparison figures the
    gate reads (``report["vs"]``) against every version already evaluated on the same set:
    ``sensitivity_low`` is the lower 95 % bound of each urgent CXR sensitivity difference and
    ``f1_diff`` the CXR macro-F1 difference (this version minus the other)."""
    dataset, _ = DatasetVersion.objects.get_or_create(slug="locked-set", defaults={"store_uri": "/nonexistent/locked"})
    champion = ModelAlias.objects.filter(name=NAME, alias="production").values_list(
        "model_version__version", flat=True).first()
    if champion and champion != version and not Evaluation.objects.filter(
            model_version__version=champion, model_version__name=NAME, set_hash=SET_HASH).exists():
        evaluate(champion)  # the comparison evaluates the champion on the same set too
    others = list(Evaluation.objects.filter(dataset_version=dataset, set_hash=SET_HASH,
                                            status=Evaluation.Status.SUCCEEDED).select_related("model_version"))
    vs = {}
    for other in others:
        vs[other.model_version.version] = {
            "champion_evaluation_id": other.pk, "set_hash": SET_HASH,
            "macro_f1_cxr4": {"diff": [f1_diff, f1_diff - 0.02, f1_diff + 0.02]},
            "sensitivity": {k: {"n": 20, "diff": [sensitivity_low + 0.03, sensitivity_low, sensitivity_low + 0.06]}
                            for k in ("lung-covid", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")},
        }
    return Evaluation.objects.create(
        model_version=ModelVersion.objects.get(name=NAME, version=version), dataset_version=dataset,
        set_name="locked", set_hash=SET_HASH, status=Evaluation.Status.SUCCEEDED, n=120,
        report={"ece": ece, "vs": vs}, finished_at=timezone.now(),
    )
