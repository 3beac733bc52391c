"""The single-file bundle (the shipped starter model): round trip, and refusals that name
the file and the fault."""

import json

import numpy as np
import pytest
import torch

from mlcore.ml.bundle import BundleFileError, ModelBundle
from mlcore.ml.evaluation.ood import OODDetector
from mlcore.ml.models import build_model
from mlcore.ml.predictor import Predictor
from mlcore.ml.scope import ScopeRule
from mlcore.ml.transforms import PreprocessConfig


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    torch.manual_seed(0)
    model = build_model("vit-tiny-test")
    rng = np.random.default_rng(0)
    emb, desc = rng.normal(size=(60, 32)), rng.normal(size=(60, 73))
    labels = np.arange(60) % 9
    ood = OODDetector.fit(train_embeddings=emb, train_descriptors=desc, train_labels=labels,
                          val_embeddings=emb[:20], val_descriptors=desc[:20])
    return ModelBundle(model_name="vit-tiny-test", state_dict=model.state_dict(),
                       preprocess=PreprocessConfig(image_size=32, mean=0.4, std=0.2, intensity="equalize"),
                       temperature=1.7, ood=ood, scope_rule=ScopeRule(threshold=0.85),
                       metadata={"evaluation": {"test": {"n": 3}}, "trained_at": "2026-12-01"})


def test_round_trip_keeps_everything_and_predicts_the_same(bundle, tmp_path) -> None:
    path = bundle.save_file(tmp_path / "starter.pt")
    loaded = ModelBundle.load_file(path)
    assert loaded.preprocess == bundle.preprocess and loaded.scope_rule == bundle.scope_rule
    assert loaded.temperature == pytest.approx(1.7) and loaded.metadata == bundle.metadata
    assert loaded.ood.threshold == pytest.approx(bundle.ood.threshold)
    np.testing.assert_allclose(loaded.ood.val_quantiles, bundle.ood.val_quantiles)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict.values() if v.is_floating_point())
    img = np.random.default_rng(1).integers(0, 255, (40, 36), dtype=np.uint8)
    a = Predictor(bundle, version="a", model_uri="x").predict([img], scopes=["cxr"])[0]
    b = Predictor(loaded, version="b", model_uri="x").predict([img], scopes=["cxr"])[0]
    # float16 weights: the probabilities move in the third decimal at most
    assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 5e-3


def test_truncated_file_is_refused_naming_it(bundle, tmp_path) -> None:
    path = bundle.save_file(tmp_path / "starter.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleFileError, match=r"starter\.pt: not a readable model file"):
        ModelBundle.load_file(path)


def test_missing_and_foreign_files_are_refused(tmp_path) -> None:
    with pytest.raises(BundleFileError, match="no such file"):
        ModelBundle.load_file(tmp_path / "absent.pt")
    torch.save({"some": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(BundleFileError, match="not a RadViewer model file"):
        ModelBundle.load_file(tmp_path / "other.pt")


def _rewrite(path, edit):
    payload = torch.load(path, weights_only=True)
    doc = json.loads(payload["doc"])
    edit(doc, payload)
    payload["doc"] = json.dumps(doc)
    torch.save(payload, path)


def test_wrong_class_list_variant_or_weights_are_refused(bundle, tmp_path) -> None:
    path = bundle.save_file(tmp_path / "a.pt")
    _rewrite(path, lambda doc, _: doc.update(class_keys=doc["class_keys"][:5]))
    with pytest.raises(BundleFileError, match="class list"):
        ModelBundle.load_file(path)
    path = bundle.save_file(tmp_path / "b.pt")
    _rewrite(path, lambda doc, _: doc.update(model_name="vit-does-not-exist"))
    with pytest.raises(BundleFileError, match="unknown model variant"):
        ModelBundle.load_file(path)
    path = bundle.save_file(tmp_path / "c.pt")
    _rewrite(path, lambda doc, payload: payload["state_dict"].popitem())
    with pytest.raises(BundleFileError, match="weights do not fit"):
        ModelBundle.load_file(path)
