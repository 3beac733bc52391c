"""The starter model: registered as version 1 production in seconds on a fresh install;
a broken file stops with a message naming it and registers nothing."""

import io

import pytest
import torch
from django.core.management import CommandError, call_command

from mlcore.ml.bundle import ModelBundle
from mlcore.ml.models import build_model
from mlcore.ml.transforms import PreprocessConfig
from mlcore.models import DatasetVersion, ModelAlias, ModelVersion
from radviewer.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def isolated_registry(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    return settings


@pytest.fixture
def starter_file(tmp_path):
    torch.manual_seed(0)
    bundle = ModelBundle(
        model_name="vit-tiny-test", state_dict=build_model("vit-tiny-test").state_dict(),
        preprocess=PreprocessConfig(image_size=32, mean=0.4, std=0.2, intensity="equalize"),
        metadata={"trained_at": "2026-12-01T00:00:00Z", "data_synthetic": False,
                  "recipe": {"epochs": 40, "seed": 42},
                  "evaluation": {"test": {
                      "class_keys": ["lung-covid", "lung-normal"], "split": "test", "n": 2,
                      "accuracy": 0.5, "macro_f1": 0.5, "macro_f1_cxr4": 0.5, "ece": 0.1,
                      "urgent_sensitivity": 1.0, "confusion": [[1, 0], [1, 0]], "extra": {},
                      "per_class": {k: {"support": 1, "predicted": 1, "sensitivity": 1.0,
                                        "specificity": 0.5, "precision": 0.5, "f1": 0.67,
                                        "auc": 0.5} for k in ("lung-covid", "lung-normal")}}}},
    )
    return bundle.save_file(tmp_path / "radviewer-starter.pt")


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_registers_version_1_production_with_its_metrics_once(isolated_registry, starter_file):
    out = run("ensure_starter_model", "--file", str(starter_file))
    assert "starter model registered: radviewer-triage version 1 is production" in out
    version = ModelVersion.objects.get(version="1")
    assert ModelAlias.objects.get(alias="production").model_version == version
    assert version.metrics["test_macro_f1_cxr4"] == pytest.approx(0.5)
    assert version.variant == "vit-tiny-test" and not version.synthetic
    assert AuditEvent.objects.filter(action="model.registered", object_id="radviewer-triage/1").count() == 1
    # the data page's first row, the app's own store, is registered on the way (`make run`)
    assert DatasetVersion.objects.get(slug="current").status == "ready"
    # a second run finds production and does nothing
    assert "production model: radviewer-triage version 1" in run("ensure_starter_model", "--file", str(starter_file))
    assert ModelVersion.objects.count() == 1

    from mlcore.ml.predictor import Predictor

    predictor = Predictor.from_uri("models:/radviewer-triage@production",
                                   tracking_uri=isolated_registry.MLFLOW_TRACKING_URI)
    assert predictor.bundle.preprocess.intensity == "equalize"


def test_a_truncated_file_stops_with_its_name_and_registers_nothing(isolated_registry, starter_file):
    starter_file.write_bytes(starter_file.read_bytes()[:1000])
    with pytest.raises(CommandError, match=r"radviewer-starter\.pt: not a readable model file"):
        run("ensure_starter_model", "--file", str(starter_file))
    assert not ModelVersion.objects.exists() and not AuditEvent.objects.filter(action="model.registered").exists()


def test_the_shipped_starter_file_loads(isolated_registry):
    from mlcore.ml.classes import CLASS_KEYS
    from mlcore.services.starter import STARTER_FILE

    bundle = ModelBundle.load_file(STARTER_FILE)  # checks classes, variant and weights
    assert bundle.class_keys == CLASS_KEYS and STARTER_FILE.stat().st_size <= 12 * 1024 * 1024
    assert bundle.metadata["card"]["splits"]["final_eval"]["n"] > 0


def test_the_model_card_shows_the_shipped_files_figures():
    """docs/model-card.md's figures are generated from the shipped file (`manage.py model_card`):
    a file replaced without regenerating the card fails here."""
    assert "up to date" in run("model_card", "--check")


def test_refreshing_the_figures_keeps_the_weights_and_records_it(tmp_path):
    """`build_starter_model --refresh-figures`: the card's figures are recomputed from the data
    (now with the ECE sampling floor) while the weights stay; another data set is refused."""
    from mlcore.ml.data import open_store
    from mlcore.services.starter import StarterModelError, starter_dataset, starter_figures_refresh
    from tests.ml.conftest import texture, write_image

    tree = tmp_path / "real-cxr"
    for c, key in enumerate(("lung-covid", "lung-normal", "lung-opacity", "lung-viral-pneumonia")):
        for i in range(12):
            write_image(tree / key / f"{i}.png", texture(100 * c + i, size=48))
    store_uri = str(tmp_path / "store")
    store = starter_dataset(data_dir=tree, store_uri=store_uri)
    torch.manual_seed(0)
    bundle = ModelBundle(model_name="vit-tiny-test", state_dict=build_model("vit-tiny-test").state_dict(),
                         preprocess=PreprocessConfig(image_size=32, mean=0.4, std=0.2),
                         metadata={"manifest_hash": store.manifest_hash(), "card": {"splits": {}}})
    path = bundle.save_file(tmp_path / "radviewer-starter.pt")
    weights = ModelBundle.load_file(path).state_dict

    figures = starter_figures_refresh(path=path, data_dir=tree, store_uri=store_uri)
    after = ModelBundle.load_file(path)
    assert after.metadata["card"] == figures and after.metadata["figures_recomputed"]["git_commit"]
    split = next(iter(figures["splits"].values()))
    assert 0 <= split["ece_floor"]["median"] <= split["ece_floor"]["p95"] <= 1
    assert all(torch.equal(weights[k], after.state_dict[k]) for k in weights)

    other = tmp_path / "other"
    write_image(other / "lung-covid" / "x.png", texture(999, size=48))
    starter_dataset(data_dir=other, store_uri=str(tmp_path / "other-store"))
    with pytest.raises(StarterModelError, match="manifest hash differs"):
        starter_figures_refresh(path=path, data_dir=other, store_uri=str(tmp_path / "other-store"))
    assert open_store(store_uri).manifest_hash() == store.manifest_hash()
