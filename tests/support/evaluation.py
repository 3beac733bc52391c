"""Fixtures for evaluation and comparison tests: a small synthetic store registered as a
DatasetVersion, and a second random-weight version beside the session's production one."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.ml.data import LocalDatasetStore, generate_phantom, make_synthetic_dataset
from mlcore.ml.data.imaging import encode_png

CXR = ("lung-covid", "lung-normal", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")
FEEDBACK = 2


@pytest.fixture(scope="session")
def eval_store(tmp_path_factory):
    """~16 final_eval images over the five CXR classes, plus two feedback corrections."""
    store = LocalDatasetStore(tmp_path_factory.mktemp("eval-store") / "store")
    make_synthetic_dataset(store, per_class=6, size=48, seed=3, classes=CXR,
                           fractions={"train": 0.2, "val": 0.1, "test": 0.2, "final_eval": 0.5})
    rng = np.random.default_rng(9)
    for i in range(FEEDBACK):
        store.add_sample(split="feedback", class_key="lung-covid", patient_key=f"fb-{i}", source="feedback",
                         data=encode_png(generate_phantom("lung-covid", size=48, rng=rng)),
                         extra={"study": f"1.2.3.{i}", "reader": "dr_house", "model_version": "1"})
    return store


@pytest.fixture(scope="session")
def second_version_number(_mlflow_test_store):
    from tests.support.models import register_random_model

    return register_random_model(tracking_uri=_mlflow_test_store["tracking_uri"], name=_mlflow_test_store["name"],
                                 alias=None, seed=1)


@pytest.fixture
def two_versions(production_model, second_version_number):
    """(champion in production, challenger without alias), mirrored into this test's database."""
    from mlcore.models import ModelVersion
    from mlcore.services.registry import registry_sync

    registry_sync(name=production_model["name"])
    name = production_model["name"]
    return (ModelVersion.objects.get(name=name, version=production_model["version"]),
            ModelVersion.objects.get(name=name, version=second_version_number))


@pytest.fixture
def eval_dataset(eval_store, db):
    from mlcore.models import DatasetVersion

    return DatasetVersion.objects.create(slug="synthetic-eval", store_uri=eval_store.uri,
                                         manifest_hash=eval_store.manifest_hash(),
                                         status=DatasetVersion.Status.READY)
