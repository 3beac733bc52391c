"""The mlcore commands end to end on the embedded profile: synthetic data -> train -> evaluate -> alias."""

import io

import pytest
from django.core.management import CommandError, call_command

from mlcore.models import DatasetVersion, Evaluation, ModelAlias, ModelVersion, TrainingJob
from radviewer.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def isolated_registry(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    return settings


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def test_synthetic_train_evaluate_alias(isolated_registry, client, ml_admin):
    out = run("make_synthetic_dataset", "--per-class", "15", "--size", "48")  # final_eval: the locked set
    assert "synthetic dataset written" in out
    out = run("train_model", "--model", "vit-tiny-test", "--epochs", "2", "--batch-size", "16",
              "--alias", "candidate")
    assert "MLflow run:" in out and "registered radviewer-triage version 1 with alias candidate" in out
    assert ModelVersion.objects.filter(version="1").exists()
    assert ModelAlias.objects.filter(alias="candidate", model_version__version="1").exists(), out
    assert AuditEvent.objects.filter(action="model.registered").exists()
    job = TrainingJob.objects.get()  # the console's service ran it: the job shows on the page
    assert job.created_label == "cli:train_model" and job.state == "succeeded"
    assert [h["epoch"] for h in job.history] == [1, 2] and job.model_version == "1"
    assert "epoch 2/2" in out
    # Trained on phantoms: the mirror says so and every place that shows the version labels it.
    version = ModelVersion.objects.get(version="1")
    assert version.synthetic and "synthetic demo — not for real images" in str(version)
    client.force_login(ml_admin)
    page = client.get("/ml/").content.decode()
    assert "synthetic demo — not for real images" in page

    registered_metrics = dict(version.metrics)
    out = run("evaluate_model", "--model-uri", "models:/radviewer-triage@candidate", "--split", "test")
    assert "macro" in out.lower() and "evaluated radviewer-triage v1 on test" in out
    # Its own record; the metrics the version was registered with stay as they were.
    # (the job evaluated it on the locked set before the candidate move: that is another record)
    assert Evaluation.objects.filter(set_name="locked", model_version__version="1").count() == 1
    evaluation = Evaluation.objects.get(set_name="test")
    assert evaluation.status == "succeeded" and evaluation.n > 0
    assert f"stored as evaluation {evaluation.pk}" in out
    assert ModelVersion.objects.get(version="1").metrics == registered_metrics
    # The same store named by its file:// URI: the same dataset version, the same evaluation.
    from pathlib import Path

    store_uri = Path(isolated_registry.DATASET_STORE_URI).as_uri()
    out = run("evaluate_model", "--model-uri", "models:/radviewer-triage@candidate", "--split", "test",
              "--store", store_uri)
    assert f"stored as evaluation {evaluation.pk}" in out
    assert DatasetVersion.objects.count() == 1 and Evaluation.objects.count() == 2

    # Trained on phantoms: production is refused, and no justification overrides that.
    with pytest.raises(CommandError, match="gate blocks"):
        run("set_model_alias", "production", "1", "--reason", "demo")
    with pytest.raises(CommandError, match="cannot be overridden: trained on real data"):
        run("set_model_alias", "production", "1", "--reason", "demo", "--override", "demo installation")
    assert not ModelAlias.objects.filter(alias="production").exists()
    # Canary is blocked too (a two-epoch model's calibration fails the ECE criterion), but
    # that can be overridden with a written justification, which the output and the audit
    # log keep.
    with pytest.raises(CommandError, match="gate blocks"):
        run("set_model_alias", "canary", "1", "--reason", "demo")
    out = run("set_model_alias", "canary", "1", "--reason", "demo",
              "--override", "demo installation, synthetic images only")
    assert "radviewer-triage@canary now points at version 1" in out
    assert "PASS  evaluation report on the locked set" in out and "FAIL  calibration (ECE)" in out
    assert "gate overridden" in out
    assert ModelAlias.objects.get(alias="canary").model_version.version == "1"
    event = AuditEvent.objects.get(action="model.alias_set", actor_label="cli:set_model_alias")
    assert event.details["alias"] == "canary"
    assert AuditEvent.objects.filter(action="model.gate_overridden").count() == 1

    from mlcore.ml.predictor import Predictor

    predictor = Predictor.from_uri("models:/radviewer-triage@canary",
                                   tracking_uri=isolated_registry.MLFLOW_TRACKING_URI)
    import numpy as np

    [result] = predictor.predict([np.full((40, 50), 120, dtype=np.uint8)])
    assert result.model_version == "1" and abs(sum(result.probabilities.values()) - 1) < 1e-4


def test_set_alias_of_unknown_version_fails_clearly(isolated_registry):
    with pytest.raises(CommandError, match="could not set production -> 7"):
        run("set_model_alias", "production", "7", "--reason", "r")


def test_rollback_production_command(isolated_registry, ml_admin):
    from mlcore.services.promotion import alias_move
    from tests.support.models import register_random_model

    uri = isolated_registry.MLFLOW_TRACKING_URI
    register_random_model(tracking_uri=uri, name="radviewer-triage")
    register_random_model(tracking_uri=uri, name="radviewer-triage", alias=None, seed=1)
    with pytest.raises(CommandError, match="nothing to roll back to"):
        run("rollback_production", "--reason", "r")
    alias_move(actor=ml_admin, alias="production", version="2", reason="r", override_justification="test only")
    out = run("rollback_production", "--reason", "readers disagree")
    assert "rolled back from version 2 to 1" in out
    assert ModelAlias.objects.get(alias="production").model_version.version == "1"
    assert AuditEvent.objects.get(action="model.rolled_back").actor_label == "cli:rollback_production"


def test_train_on_empty_store_stops_with_message(isolated_registry):
    with pytest.raises(CommandError, match=r"(?i)empty|no .*images"):
        run("train_model", "--model", "vit-tiny-test", "--epochs", "1")


def test_import_refuses_unknown_folders(isolated_registry, tmp_path):
    (tmp_path / "src" / "NotAClass" / "images").mkdir(parents=True)
    with pytest.raises(CommandError, match="accepted"):
        run("import_dataset", str(tmp_path / "src"), "--format", "covid19-radiography")


@pytest.mark.slow
def test_demo_model_is_registered_without_an_alias_and_labelled_synthetic(isolated_registry, tmp_path):
    isolated_registry.VAR_DIR = tmp_path / "var"
    out = run("ensure_demo_model", "--per-class", "4", "--size", "48", "--epochs", "1")
    assert "synthetic demo — not for real images" in out
    assert "set_model_alias canary 1" in out and "never goes to production" in out  # never serves by itself
    assert not ModelAlias.objects.exists()
    assert ModelVersion.objects.get(version="1").synthetic
    event = AuditEvent.objects.get(action="model.registered")
    assert event.actor_label == "cli:ensure_demo_model"


@pytest.mark.parametrize("command", [["train_model", "--model", "vit-tiny-test", "--epochs", "1"],
                                     ["build_starter_model", "--epochs", "1"]])
def test_training_commands_stop_before_training_on_an_unmigrated_database(tmp_path, command):
    """A fresh checkout's database has no tables: the commands say so at once instead of
    training for minutes and failing on a missing table when they register the version."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "RADVIEWER_DATASET_URI": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *command,
                           "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "unapplied migrations" in done.stderr and "manage.py migrate" in done.stderr
    assert "Traceback" not in done.stderr and "epoch" not in done.stdout
