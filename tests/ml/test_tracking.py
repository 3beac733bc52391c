"""MLflow helpers: URIs, aliases (never stages or "latest"), pyfunc logging, downloads."""

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.models import build_model
from mlcore.ml.transforms import PreprocessConfig

NAME = "tracking-test"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{tmp}/db/mlflow.db"
    tracking.configure(uri)
    torch.manual_seed(0)
    bundle = ModelBundle(model_name="vit-tiny-test",
                         state_dict=build_model("vit-tiny-test").state_dict(),
                         preprocess=PreprocessConfig(image_size=32, mean=0.4, std=0.2),
                         temperature=1.7)
    bundle_dir = bundle.save(tmp / "bundle")
    with tracking.start_run(experiment="tracking-test", log_system_metrics=False) as run:
        model_uri, version = tracking.log_model_bundle(
            bundle_dir, image_size=32, class_keys=CLASS_KEYS,
            preprocess=bundle.preprocess.to_dict(), temperature=1.7,
            registered_model_name=NAME)
    return uri, tmp, run.info.run_id, model_uri, version


def test_sqlite_store_and_artifacts_live_under_the_db_dir(logged):
    _, tmp, run_id, _, version = logged
    assert (tmp / "db" / "mlflow.db").is_file()  # configure created the directory
    assert version == "1"
    artifact_uri = MlflowClient().get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith((tmp / "db" / "artifacts").as_uri())


def test_aliases_not_stages(logged):
    tracking.configure(logged[0])
    assert tracking.get_version_by_alias(NAME, "canary") is None
    assert tracking.get_version_by_alias("no-such-model", "production") is None
    tracking.set_alias(NAME, "canary", "1")
    assert tracking.get_version_by_alias(NAME, "canary") == "1"
    assert tracking.resolve_version(f"models:/{NAME}@canary") == "1"
    tracking.client().delete_registered_model_alias(NAME, "canary")
    assert tracking.get_version_by_alias(NAME, "canary") is None
    for bad in ("latest", "3"):
        with pytest.raises(ValueError, match="not allowed"):
            tracking.set_alias(NAME, bad, "1")


def test_parse_model_uri():
    assert tracking.parse_model_uri("models:/m@production") == ("m", "production", None)
    assert tracking.parse_model_uri("models:/m/12") == ("m", None, "12")
    for bad in ("models:/m/latest", "models:/m/Staging", "models:/m", "runs:/x/model", ""):
        with pytest.raises(ValueError, match="accepted"):
            tracking.parse_model_uri(bad)


def test_download_bundle_and_pyfunc(logged, tmp_path):
    uri, _, _, model_uri, _ = logged
    tracking.configure(uri)
    bundle_dir = tracking.download_bundle(f"models:/{NAME}/1", tmp_path, tracking_uri=uri)
    bundle = ModelBundle.load(bundle_dir)
    assert bundle.temperature == 1.7 and bundle.preprocess.mean == 0.4
    model = mlflow.pyfunc.load_model(model_uri)
    x = np.random.default_rng(0).normal(size=(3, 1, 32, 32)).astype(np.float32)
    probs = model.predict(x)
    assert probs.shape == (3, 9) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    meta = model.metadata
    assert meta.metadata["class_keys"] == list(CLASS_KEYS)
    assert meta.metadata["temperature"] == 1.7
    assert meta.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 1, 32, 32)
    assert meta.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 9)


def test_small_helpers(tmp_path):
    assert tracking.default_artifact_root(f"sqlite:///{tmp_path}/x.db") == \
        (tmp_path / "artifacts").as_uri()
    assert tracking.default_artifact_root("http://mlflow:5000") is None
    assert tracking.flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == \
        {"a.b": "1", "a.c.d": "x", "e": "[1, 2]"}
    sha = tracking.git_commit()
    assert sha == "unknown" or (len(sha) == 40 and int(sha, 16) >= 0)
    assert tracking.git_commit(tmp_path) == "unknown"  # not a git checkout
