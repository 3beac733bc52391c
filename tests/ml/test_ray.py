"""Ray Train backend: two CPU workers (DDP over gloo), then the shared register tail."""

import pytest
from mlflow import MlflowClient

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.ml.training import TrainConfig, train


@pytest.fixture(scope="module")
def ray_session():
    import ray

    yield
    if ray.is_initialized():
        ray.shutdown()


def test_ray_backend_trains_and_registers(tmp_path, ray_session):
    store = LocalDatasetStore(tmp_path / "store")
    make_synthetic_dataset(store, per_class=6, size=64, seed=2)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrainConfig(
        store_uri=str(store.root), tracking_uri=uri, model_name="vit-tiny-test", epochs=2,
        batch_size=8, max_train_batches=2, progress=False, backend="ray", num_workers_ray=2,
        registered_model_name="ray-test", alias="candidate", log_system_metrics=False,
    )
    result = train(cfg)
    assert result.model_version == "1"
    tracking.configure(uri)
    assert tracking.get_version_by_alias("ray-test", "candidate") == "1"
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.tags["radviewer.backend"] == "ray"
    assert run.data.params["ray.num_workers"] == "2"
    assert run.data.params["data.manifest_hash"] == store.manifest_hash()
    # per-epoch curves came from the rank-0 worker, one point per epoch
    assert [m.step for m in client.get_metric_history(result.run_id, "val_macro_f1")] == [0, 1]
    assert "test_accuracy" in run.data.metrics
    bundle = ModelBundle.load(result.bundle_dir)
    assert bundle.metadata["backend"] == "ray" and bundle.metadata["ray_workers"] == 2
