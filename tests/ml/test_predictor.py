"""Predictor: loading from the registry, input checks, calibrated output, heat maps."""

import threading

import numpy as np
import pytest
import torch

from mlcore.ml import tracking
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.models import build_model
from mlcore.ml.predictor import Predictor
from mlcore.ml.transforms import PreprocessConfig

NAME = "predictor-test"


def make_bundle(temperature: float = 1.0, seed: int = 0) -> ModelBundle:
    torch.manual_seed(seed)
    model = build_model("vit-tiny-test")
    return ModelBundle(model_name="vit-tiny-test", state_dict=model.state_dict(),
                       preprocess=PreprocessConfig(image_size=32, mean=0.3, std=0.25),
                       temperature=temperature)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(make_bundle(), version="7", model_uri="models:/x/7")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp}/mlflow.db"
    tracking.configure(uri)
    bundle_dir = make_bundle(seed=1).save(tmp / "bundle")
    with tracking.start_run(experiment="predictor-test", log_system_metrics=False):
        _, version = tracking.log_model_bundle(
            bundle_dir, image_size=32, class_keys=CLASS_KEYS,
            preprocess={"image_size": 32, "mean": 0.3, "std": 0.25}, temperature=1.0,
            registered_model_name=NAME)
    tracking.set_alias(NAME, "production", version)
    return uri, version


def test_from_uri_by_alias_and_by_number(registry, tmp_path):
    uri, version = registry
    p = Predictor.from_uri(f"models:/{NAME}@production", tracking_uri=uri,
                           cache_dir=tmp_path / "a")
    assert p.version == version == "1" and p.model_uri == f"models:/{NAME}@production"
    q = Predictor.from_uri(f"models:/{NAME}/1", tracking_uri=uri, cache_dir=tmp_path / "b")
    img = np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8)
    assert p.predict([img])[0].probabilities == q.predict([img])[0].probabilities
    assert p.predict([img])[0].model_version == "1"


def test_from_uri_refuses_latest_stages_and_unknown_alias(registry):
    uri, _ = registry
    for bad in (f"models:/{NAME}/latest", f"models:/{NAME}/Production", "runs:/abc/model"):
        with pytest.raises(ValueError, match="accepted"):
            Predictor.from_uri(bad, tracking_uri=uri)
    with pytest.raises(LookupError, match="no alias 'canary'"):
        Predictor.from_uri(f"models:/{NAME}@canary", tracking_uri=uri)


def test_probabilities_are_calibrated_and_sum_to_one(predictor):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (64, 48), dtype=np.uint8),
              rng.integers(0, 4095, (30, 90), dtype=np.uint16),
              rng.random((50, 50), dtype=np.float32),
              rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)]
    results = predictor.predict(images, scopes=["cxr", "cxr", "oct", "cxr"])
    assert len(results) == 4
    cxr_keys = [k for k in CLASS_KEYS if "oct" not in k]
    for r, img in zip(results, images, strict=True):
        assert list(r.probabilities) == (cxr_keys if r.scope == "cxr" else
                                         [k for k in CLASS_KEYS if "oct" in k])
        assert r.scope_source == "header"
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert r.top_class == max(r.probabilities, key=r.probabilities.get)
        assert r.confidence == r.probabilities[r.top_class]
        assert r.model_name == "vit-tiny-test" and r.model_version == "7" and r.latency_ms > 0
        assert r.heatmap.shape == (32, 32) and 0 <= r.heatmap.min() <= r.heatmap.max() <= 1
        assert r.heatmap_on_original().shape == img.shape[:2]
    assert results[2].scope == "oct"
    assert results[1].letterbox == (10, 0, 11, 32)  # 30x90 -> 11x32, (32 - 11) // 2 on top
    hot = make_bundle(temperature=3.0)
    cooled = Predictor(hot, version="t", model_uri="local").predict(images[:1], scopes=["cxr"])[0]
    assert cooled.confidence < results[0].confidence  # same weights, higher temperature


def test_undecided_scope_shows_no_class_and_is_read_without_the_ai(predictor):
    # A random-weight model spreads its probability over both scopes: below the rule's
    # threshold nothing is forced into a class.
    img = np.random.default_rng(4).integers(0, 255, (48, 48), dtype=np.uint8)
    [r] = predictor.predict([img])
    assert r.scope is None and r.scope_source == "undecided"
    assert r.top_class == "" and r.confidence == 0.0 and r.out_of_scope
    assert "could not tell a chest X-ray from a retinal OCT" in r.ood_reason
    assert list(r.probabilities) == list(CLASS_KEYS)
    with pytest.raises(ValueError, match="scopes must give"):
        predictor.predict([img], scopes=["chest"])


def test_explain_false_skips_the_map_and_keeps_the_prediction(predictor):
    img = np.random.default_rng(2).integers(0, 255, (32, 32), dtype=np.uint8)
    with_map, without = predictor.predict([img])[0], predictor.predict([img], explain=False)[0]
    assert without.heatmap is None
    assert without.probabilities == pytest.approx(with_map.probabilities)


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (np.zeros((32, 32, 4), np.uint8), r"\(32, 32, 4\)"),
        (np.zeros((32, 32), np.int64), "int64"),
        (np.zeros(32, np.uint8), r"\(32,\)"),
        (np.zeros((4, 4), np.uint8), "too small"),
        ("not an image", "str"),
    ],
)
def test_bad_inputs_are_refused_with_what_is_accepted(predictor, bad, what):
    with pytest.raises(ValueError, match=what) as err:
        predictor.predict([bad])
    assert "accepted" in str(err.value)


def test_bad_containers_are_refused(predictor):
    with pytest.raises(ValueError, match="at least one"):
        predictor.predict([])
    with pytest.raises(ValueError, match="sequence"):
        predictor.predict(np.zeros((32, 32), np.uint8))


def test_blank_image_is_out_of_scope_even_without_detector(predictor):
    r = predictor.predict([np.full((40, 40), 7, np.uint8)])[0]
    assert r.out_of_scope and r.ood_reason == "near-constant image"


def test_concurrent_calls_give_the_sequential_answers(predictor):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (48, 48), dtype=np.uint8) for _ in range(6)]
    expected = [r.probabilities for r in predictor.predict(images)]
    got: dict[int, dict] = {}

    def worker(i: int) -> None:
        got[i] = predictor.predict([images[i]])[0].probabilities

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        assert got[i] == pytest.approx(expected[i], abs=1e-5)


def test_attributions_on_demand(predictor):
    img = np.random.default_rng(4).integers(0, 255, (32, 40), dtype=np.uint8)
    for method in ("integrated_gradients", "grad_cam"):
        m = predictor.explain_attribution(img, method, target="lung-covid")
        assert m.shape == (32, 32) and m.dtype == np.float32 and m.max() <= 1.0
    with pytest.raises(ValueError, match="accepted: integrated_gradients, grad_cam"):
        predictor.explain_attribution(img, "lime")
    with pytest.raises(ValueError, match="unknown target class"):
        predictor.explain_attribution(img, target="lung-cancer")
