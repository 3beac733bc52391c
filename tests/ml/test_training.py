"""End-to-end local training on a tiny synthetic store with a throw-away MLflow store."""

import json
import re

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.ml.data.imaging import encode_png
from mlcore.ml.training import TrainConfig, train

NAME = "radviewer-triage-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    s = LocalDatasetStore(root)
    make_synthetic_dataset(s, per_class=8, size=64, seed=3)
    return s


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cfg = TrainConfig(
        store_uri=str(store.root), tracking_uri=uri, model_name="vit-tiny-test",
        epochs=2, batch_size=16, max_train_batches=3, progress=False, alias="candidate",
        registered_model_name=NAME, output_dir=str(tmp / "out"), log_system_metrics=False,
    )
    return cfg, train(cfg)


def test_train_registers_version_1_with_alias(trained):
    cfg, result = trained
    assert result.model_version == "1"
    tracking.configure(cfg.tracking_uri)
    assert tracking.get_version_by_alias(NAME, "candidate") == "1"
    assert tracking.get_version_by_alias(NAME, "production") is None
    mv = MlflowClient().get_model_version(NAME, "1")
    assert mv.run_id == result.run_id


def test_run_logs_params_metrics_and_artifacts(trained, store):
    cfg, result = trained
    tracking.configure(cfg.tracking_uri)
    client = MlflowClient()
    run = client.get_run(result.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["data.manifest_hash"] == store.manifest_hash()
    assert params["model_name"] == "vit-tiny-test" and params["arch.img_size"] == "32"
    assert params["git_commit"] == tracking.git_commit()  # this checkout's HEAD
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", params["git_commit"])
    assert int(params["data.counts.train.lung-covid"]) > 0
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "val_macro_f1"):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [0, 1], key
    assert "calibration_temperature" in metrics and "calibration_ece_after" in metrics
    assert "test_macro_f1" in metrics and "test_accuracy" in metrics
    per_class = [k for k in metrics if k.startswith("test_lung-") and k.endswith("_f1")]
    assert per_class, "per-class test F1 must be logged"
    assert any(k.endswith("_auc") for k in metrics)
    files = {f.path for f in client.list_artifacts(result.run_id, "evaluation")}
    assert {"evaluation/test_confusion.png", "evaluation/test.json",
            "evaluation/val_calibrated.json"} <= files
    report = json.loads(mlflow.artifacts.load_text(
        f"{run.info.artifact_uri}/evaluation/test.json"))
    assert report["split"] == "test" and len(report["confusion"]) == 9


def test_bundle_roundtrip(trained, tmp_path):
    _, result = trained
    bundle = ModelBundle.load(result.bundle_dir)
    assert bundle.model_name == "vit-tiny-test" and bundle.image_size == 32
    assert bundle.temperature == pytest.approx(result.metrics["calibration_temperature"])
    assert bundle.ood is not None and np.isfinite(bundle.ood.threshold)
    assert bundle.metadata["run_id"] == result.run_id
    again = ModelBundle.load(bundle.save(tmp_path / "copy"))
    assert again.preprocess == bundle.preprocess and again.class_keys == bundle.class_keys
    assert np.allclose(again.ood.feature.precision, bundle.ood.feature.precision)
    model = again.build()
    x = torch.zeros(2, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), bundle.build()(x))
    assert not model.training


def test_empty_split_fails_clearly_without_a_run(store, tmp_path):
    broken = LocalDatasetStore(tmp_path / "broken")
    make_synthetic_dataset(broken, per_class=4, size=64, seed=1)
    broken.write_manifest([r for r in broken.manifest() if r.split != "val"])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrainConfig(store_uri=str(broken.root), tracking_uri=uri, model_name="vit-tiny-test",
                      epochs=1, progress=False, experiment="empty-split")
    with pytest.raises(ValueError, match=r"empty split.*val"):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists()  # refused before any MLflow run was opened


def test_feedback_joins_train_only_when_asked(store, tmp_path):
    from mlcore.ml.data import generate_phantom
    from mlcore.ml.training import RadDataModule

    s = LocalDatasetStore(tmp_path / "fb")
    make_synthetic_dataset(s, per_class=4, size=64, seed=5)
    img = generate_phantom("lung-covid", size=64, rng=np.random.default_rng(9))
    s.add_sample(split="feedback", class_key="lung-covid", data=encode_png(img),
                 patient_key="p1", source="feedback")
    n_train = len(s.rows("train"))
    with_fb = RadDataModule(s, image_size=32, include_feedback=True)
    without = RadDataModule(s, image_size=32)
    with_fb.setup()
    without.setup()
    assert len(with_fb.splits["train"]) == n_train + 1
    assert len(without.splits["train"]) == n_train
    assert len(with_fb.splits["val"]) == len(without.splits["val"])
    x, y = next(iter(with_fb.train_dataloader()))
    assert x.shape[1:] == (1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long


def test_evaluate_bundle_and_log_evaluation(trained, store):
    from mlcore.ml.evaluation import evaluate_bundle, log_evaluation

    cfg, result = trained
    bundle = ModelBundle.load(result.bundle_dir)
    report = evaluate_bundle(bundle, store, "test")
    assert report.n == len(store.rows("test"))
    assert report.accuracy == pytest.approx(result.metrics["test_accuracy"])
    assert 0.0 <= report.extra["ood_flag_rate"] <= 1.0
    tracking.configure(cfg.tracking_uri)
    run_id = log_evaluation(report)  # no run given: a new evaluation run
    assert run_id != result.run_id
    client = MlflowClient()
    tmp_root = cfg.tracking_uri.removeprefix("sqlite:///").rsplit("/", 1)[0]
    assert client.get_run(run_id).info.artifact_uri.startswith(f"file://{tmp_root}/artifacts")
    assert client.get_run(run_id).data.metrics["test_accuracy"] == report.accuracy
    files = {f.path for f in client.list_artifacts(run_id, "evaluation")}
    assert "evaluation/test_confusion.png" in files
    with pytest.raises(ValueError, match="no images"):
        evaluate_bundle(bundle, store, "feedback")


def test_run_carries_the_drift_reference_or_says_why_not(trained, store):
    from mlcore.ml.drift import DriftReference
    from mlcore.ml.drift.reference import ARTIFACT_PATH, MIN_REFERENCE

    cfg, result = trained
    tracking.configure(cfg.tracking_uri)
    tag = MlflowClient().get_run(result.run_id).data.tags["radviewer.drift_reference"]
    data = tracking.read_artifact_bytes(result.run_id, ARTIFACT_PATH)
    n_val = len(store.rows("val"))
    if n_val >= MIN_REFERENCE:
        assert tag == f"val, {n_val} images"
        assert DriftReference.from_bytes(data).n == n_val
    else:  # the tiny store: the version's drift checks will say "unavailable"
        assert data is None and tag.startswith("missing: ") and "at least 20" in tag
