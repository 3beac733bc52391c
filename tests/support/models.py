"""A registered model for tests: the tiny ViT with random weights, logged to MLflow like a
trained one (same bundle, same pyfunc, same registry alias), in seconds instead of minutes.

Its predictions mean nothing; tests that need a *trained* model train one (tests/ml). Its
scope rule decides at 50 %, i.e. always takes the leading scope (a random network spreads
its probability too evenly for the real rule's 80 %), so the reading workflow gets a class.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.models import build_model
from mlcore.ml.scope import ScopeRule
from mlcore.ml.transforms import PreprocessConfig

TEST_MODEL = "vit-tiny-test"


def register_random_model(*, tracking_uri: str, name: str, alias: str | None = "production", seed: int = 0) -> str:
    torch.manual_seed(seed)
    model = build_model(TEST_MODEL)
    size = int(model.default_cfg["img_size"])
    bundle = ModelBundle(
        model_name=TEST_MODEL,
        state_dict=model.state_dict(),
        preprocess=PreprocessConfig(image_size=size, mean=0.45, std=0.25),
        metadata={"purpose": "tests: random weights"},
        scope_rule=ScopeRule(threshold=0.5),
    )
    tracking.configure(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = bundle.save(Path(tmp) / "bundle")
        with tracking.start_run(experiment="radviewer-tests", run_name="random-weights",
                                log_system_metrics=False):
            import mlflow

            mlflow.log_param("model_name", TEST_MODEL)
            _, version = tracking.log_model_bundle(
                bundle_dir, image_size=size, class_keys=list(bundle.class_keys),
                preprocess=bundle.preprocess.to_dict(), temperature=1.0, registered_model_name=name,
            )
    assert version is not None
    if alias:
        tracking.set_alias(name, alias, version)
    return version
