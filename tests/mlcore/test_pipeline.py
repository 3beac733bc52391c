"""Continuous-training runs as services (the real-worker run is in
tests/integration/test_pipeline_worker.py): triggers, one at a time, the snapshot, and the
dataset store unreachable (the run fails with the reason, is retried later, nothing half-written)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.models import DatasetVersion, PipelineRun, ReviewOutcome
from mlcore.services.dataset_snapshots import DatasetStoreUnavailable, dataset_snapshot_create
from mlcore.services.feedback import feedback_sample_add
from mlcore.services.pipeline import pipeline_check, pipeline_trigger
from mlcore.services.pipeline_run import pipeline_run_execute
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import chest_png
from tests.support.registry import registry_fixture  # noqa: F401 (the registry fixture)

pytestmark = pytest.mark.django_db


def _store(path: Path, *, feedback: int = 0) -> Path:
    make_synthetic_dataset(LocalDatasetStore(path), per_class=4, size=48, seed=5,
                           fractions={"train": 0.5, "val": 0.25, "final_eval": 0.25})
    return path


def test_a_trigger_queues_a_run_and_a_second_one_waits_then_joins(settings, django_capture_on_commit_callbacks,
                                                                  ml_admin):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = pipeline_trigger(kind="manual", actor=ml_admin, reason="try it")
    assert first.state == "queued" and first.message == "queued for the training worker"
    assert len(callbacks) == 1  # mlcore.pipeline_run on commit
    assert [s["name"] for s in first.steps] == list(PipelineRun.STEPS)
    PipelineRun.objects.filter(pk=first.pk).update(state="running")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        second = pipeline_trigger(kind="drift", reason="MMD p < 0.01")
    assert second.state == "queued" and callbacks == []  # it waits: nothing sent yet
    assert second.message == f"waiting for run #{first.pk} (running) to finish"
    third = pipeline_trigger(kind="schedule")
    assert third.pk == second.pk  # a third trigger joins the waiting run
    assert [j["kind"] for j in PipelineRun.objects.get(pk=second.pk).details["joined"]] == ["schedule"]
    assert PipelineRun.objects.count() == 2
    assert AuditEvent.objects.filter(action="pipeline.triggered").count() == 3
    # the waiting run's task, if delivered early, keeps waiting
    assert pipeline_run_execute(run_id=second.pk).state == "queued"
    with pytest.raises(ValidationError, match="unknown trigger"):
        pipeline_trigger(kind="whenever")
    assert PipelineRun.objects.count() == 2


def test_corrections_trigger_fires_at_the_threshold_once(settings, django_capture_on_commit_callbacks):
    settings.PIPELINE_CORRECTIONS = 3
    name = settings.MLFLOW_REGISTERED_MODEL
    for i in range(3):
        ReviewOutcome.objects.create(model_name=name, model_version="1", prediction_ref=f"p{i}",
                                     predicted_class="lung-normal",
                                     confirmed_class="lung-opacity" if i < 2 else "lung-normal",
                                     verdict="corrected" if i < 2 else "agree")
    assert pipeline_check() == []  # 2 corrections (an agreement is not one)
    ReviewOutcome.objects.create(model_name=name, model_version="1", prediction_ref="p9",
                                 predicted_class="lung-normal", confirmed_class="lung-covid", verdict="corrected")
    with django_capture_on_commit_callbacks(execute=False):
        [run] = pipeline_check()
    assert run.trigger == "corrections" and run.details["trigger"]["details"]["corrections"] == 3
    PipelineRun.objects.filter(pk=run.pk).update(state="succeeded")
    assert pipeline_check() == []  # those corrections are in that run: N new ones are needed


def test_store_unreachable_fails_with_the_reason_retries_later_and_writes_nothing(
        settings, tmp_path, django_capture_on_commit_callbacks):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be (an unmounted share)")
    settings.DATASET_STORE_URI = str(blocker / "store")
    settings.PIPELINE_RETRY_SECONDS = 600
    settings.VAR_DIR = tmp_path / "var"
    with django_capture_on_commit_callbacks(execute=False):
        run = pipeline_trigger(kind="manual")
    run = pipeline_run_execute(run_id=run.pk)
    assert run.state == "retrying" and run.attempts == 1
    assert "dataset store unreachable" in run.error and "NotADirectoryError" in run.error
    assert run.retry_at > timezone.now() + timedelta(seconds=590)
    assert f"retried at {run.retry_at.isoformat(timespec='seconds')}" in run.message
    assert run.steps[0]["status"] == "failed" and run.steps[1]["status"] == "pending"
    assert DatasetVersion.objects.count() == 0 and run.dataset_version is None
    assert not (tmp_path / "var" / "datasets").exists() or not any((tmp_path / "var" / "datasets").iterdir())
    assert AuditEvent.objects.filter(action="pipeline.retry_scheduled", object_id=str(run.pk)).exists()
    # a trigger meanwhile waits behind the retrying run
    waiting = pipeline_trigger(kind="manual")
    assert waiting.state == "queued" and f"run #{run.pk}" in waiting.message
    # early delivery: not yet; at the retry time the beat sends it again
    assert pipeline_run_execute(run_id=run.pk).state == "retrying"
    assert pipeline_check() == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert [r.pk for r in pipeline_check(now=run.retry_at + timedelta(seconds=1))] == [run.pk]
    assert len(callbacks) == 1
    # the store is back; the snapshot is built, and a bad recipe fails the run for good
    blocker.unlink()
    store = _store(Path(settings.DATASET_STORE_URI))
    feedback_sample_add(png_bytes=chest_png(seed=3), class_key="lung-opacity", patient_key="p-3",
                        lineage={"study": "s3"})
    settings.PIPELINE_RECIPE = {"variant": "no-such-variant"}
    PipelineRun.objects.filter(pk=run.pk).update(retry_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = pipeline_run_execute(run_id=run.pk)
    assert run.state == "failed" and run.attempts == 2
    assert run.steps[0]["status"] == "done" and "1 confirmed corrections" in run.steps[0]["message"]
    assert run.steps[1]["status"] == "failed" and "unknown variant 'no-such-variant'" in run.error
    snapshot = run.dataset_version
    assert snapshot.status == "ready" and snapshot.options["lineage"]["feedback_images"] == 1
    assert {k: n for k, n in snapshot.report["counts"]["feedback"].items() if n} == {"lung-opacity": 1}
    assert snapshot.options["lineage"]["base_manifest_hash"] == LocalDatasetStore(store).manifest_hash()
    assert len(callbacks) == 1  # the waiting run starts now
    assert PipelineRun.objects.get(pk=waiting.pk).message.startswith("queued for the training worker")


def test_snapshot_is_all_or_nothing_and_idempotent(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path / "var"
    base_path = _store(tmp_path / "base")
    base = DatasetVersion.objects.create(slug="base", store_uri=LocalDatasetStore(base_path).uri,
                                         manifest_hash=LocalDatasetStore(base_path).manifest_hash())
    settings.DATASET_STORE_URI = str(tmp_path / "current")
    feedback_sample_add(png_bytes=chest_png(seed=1), class_key="lung-covid", patient_key="p1", lineage={})
    calls = {"n": 0}
    real = LocalDatasetStore._read

    def flaky(self, rel):
        calls["n"] += 1
        if calls["n"] == 6 and self.root == base_path.resolve():
            raise ConnectionResetError("share went away")
        return real(self, rel)

    monkeypatch.setattr(LocalDatasetStore, "_read", flaky)
    with pytest.raises(DatasetStoreUnavailable, match="share went away"):
        dataset_snapshot_create(base=base, feedback_store_uri=settings.DATASET_STORE_URI, slug="snap-1")
    assert not DatasetVersion.objects.filter(slug="snap-1").exists()
    assert not (tmp_path / "var" / "datasets" / "snap-1").exists()  # copied files removed
    monkeypatch.setattr(LocalDatasetStore, "_read", real)
    snap = dataset_snapshot_create(base=base, feedback_store_uri=settings.DATASET_STORE_URI, slug="snap-1")
    again = dataset_snapshot_create(base=base, feedback_store_uri=settings.DATASET_STORE_URI, slug="snap-1")
    assert again.pk == snap.pk and snap.manifest_hash == LocalDatasetStore(Path(snap.store_uri[7:])).manifest_hash()
    assert snap.report["total"] == LocalDatasetStore(base_path).split_report().total + 1
    assert AuditEvent.objects.filter(action="dataset.snapshot_created").count() == 1


def test_pipeline_page_lists_runs_and_the_button_starts_one(ml_admin_client, radiologist,
                                                            django_capture_on_commit_callbacks):
    reader = Client()
    reader.force_login(radiologist)
    assert reader.get(reverse("mlcore:pipeline")).status_code == 403
    assert reader.post(reverse("mlcore:pipeline_start")).status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = ml_admin_client.post(reverse("mlcore:pipeline_start"), {"reason": "new labels"})
    assert response.status_code == 302 and len(callbacks) == 1
    run = PipelineRun.objects.get()
    assert run.trigger == "manual" and run.reason == "new labels" and run.created_by is not None
    page = ml_admin_client.get(reverse("mlcore:pipeline"))
    body = page.content.decode()
    assert page.status_code == 200 and f"#{run.pk}" in body and "snapshot" in body and "hx-trigger" in body
    partial = ml_admin_client.get(reverse("mlcore:pipeline"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith("<section id=\"pipeline-runs\"")


@pytest.mark.parametrize("auto", [False, True])
def test_decision_step_waits_for_the_admin_or_takes_the_canary_when_every_criterion_passes(registry, auto):
    from mlcore.models import ModelAlias, RolloutPolicy
    from mlcore.services.pipeline_run import STEP_FUNCTIONS
    from tests.support.registry import NAME, evaluate

    registry.PIPELINE_AUTO_CANARY = auto
    registry.PIPELINE_CANARY_PERCENT = 7
    evaluate("2", ece=0.02)
    failing = evaluate("3", ece=0.20)  # calibration fails the canary gate
    run = PipelineRun.objects.create(name=NAME, trigger="manual", state="running", model_version="2")
    status, message, output = STEP_FUNCTIONS["decision"](run)
    assert status == "done" and output["gate_passed"] is True
    canary = ModelAlias.objects.filter(name=NAME, alias="canary").first()
    if auto:
        assert canary.model_version.version == "2" and "canary -> v2 at 7 %" in message
        assert RolloutPolicy.objects.get(name=NAME).canary_percent == 7
    else:
        assert canary is None and "awaiting the admin's decision" in message and "passes" in message
    other = PipelineRun.objects.create(name=NAME, trigger="manual", state="queued", model_version="3")
    status, message, output = STEP_FUNCTIONS["decision"](other)
    assert output["gate_passed"] is False and "calibration (ECE)" in output["failures"]
    assert failing.model_version.version == "3"
    holder = ModelAlias.objects.filter(name=NAME, alias="canary").values_list("model_version__version", flat=True)
    assert list(holder) == (["2"] if auto else [])  # a failing gate never moves it


def test_a_run_whose_worker_died_is_resumed_by_the_beat_skipping_finished_steps(
        settings, tmp_path, django_capture_on_commit_callbacks):
    settings.TRAINING_STALE_SECONDS = 120
    settings.PIPELINE_RECIPE = {"variant": "no-such-variant"}
    dataset = DatasetVersion.objects.create(slug="snap", store_uri=str(_store(tmp_path / "snap")))
    run = PipelineRun.objects.create(name=settings.MLFLOW_REGISTERED_MODEL, trigger="manual", state="running",
                                     attempts=1, dataset_version=dataset)
    steps = [{"name": n, "status": "pending", "started_at": None, "finished_at": None, "message": "",
              "output": {}} for n in PipelineRun.STEPS]
    steps[0] |= {"status": "done", "message": "dataset version snap", "output": {"dataset_version": "snap"}}
    steps[1] |= {"status": "running", "message": "started"}
    PipelineRun.objects.filter(pk=run.pk).update(steps=steps)
    # alive (a fresh stamp): the beat leaves it, a duplicate delivery is ignored
    assert pipeline_check() == []
    assert pipeline_run_execute(run_id=run.pk).attempts == 1
    PipelineRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert [r.pk for r in pipeline_check()] == [run.pk]
    assert len(callbacks) == 1
    resumed = pipeline_run_execute(run_id=run.pk)
    assert resumed.attempts == 2 and resumed.steps[0]["message"] == "dataset version snap"  # not redone
    assert DatasetVersion.objects.count() == 1
    assert resumed.state == "failed" and "unknown variant" in resumed.error  # the train step ran again


def test_a_drift_alarm_starts_a_run_through_the_registered_hook(settings, django_capture_on_commit_callbacks):
    """mlcore.apps registers the hook when PIPELINE_ON_DRIFT is on: an alarmed drift report
    (committed) starts a run whose trigger says which detector and version."""
    from django.apps import apps

    from mlcore.models import DriftReport
    from mlcore.services import drift as drift_services
    from mlcore.services.pipeline import drift_alarm_retrains

    settings.PIPELINE_ON_DRIFT = True
    apps.get_app_config("mlcore").ready()
    try:
        assert drift_alarm_retrains in drift_services._alarm_hooks
        report = DriftReport.objects.create(name="radviewer-triage", model_version="3", detector="mmd",
                                            statistic=0.2, p_value=0.001, alarm=True, window_size=200)
        with django_capture_on_commit_callbacks(execute=True):
            drift_services._fire_hooks([report.pk])
        run = PipelineRun.objects.get()
        assert run.trigger == "drift" and run.state == "queued"
        fired = run.details["trigger"]["details"]
        assert fired["detector"] == "mmd" and fired["report"] == report.pk
        assert "v3" in run.reason
    finally:
        drift_services.drift_alarm_hook_unregister(drift_alarm_retrains)


def test_the_retrain_recipe_keeps_the_starters_moving_average(settings):
    """The starter's run records its recipe under ``recipe.`` (EMA of the weights from epoch
    10): continuous training retrains with it, and a shorter override moves the start in."""
    from mlcore.models import ModelAlias, ModelVersion
    from mlcore.services.pipeline_run import pipeline_recipe

    name = settings.MLFLOW_REGISTERED_MODEL
    params = {"model_name": "vit-h16-128", "recipe.epochs": "40", "recipe.seed": "42", "recipe.lr": "0.0005",
              "recipe.batch_size": "32", "recipe.precision": "32-true", "recipe.image_size": "None",
              "recipe.ema_decay": "0.998", "recipe.ema_start_epoch": "10", "recipe.mixup_alpha": "0.2"}
    version = ModelVersion.objects.create(name=name, version="1", params=params)
    ModelAlias.objects.create(name=name, alias=ModelAlias.Alias.PRODUCTION, model_version=version)
    settings.PIPELINE_RECIPE = {}
    assert pipeline_recipe(name=name) == {"variant": "vit-h16-128", "epochs": 40, "seed": 42, "lr": 0.0005,
                                          "batch_size": 32, "precision": "32-true", "ema_decay": 0.998,
                                          "ema_start_epoch": 10, "mixup_alpha": 0.2}
    settings.PIPELINE_RECIPE = {"epochs": 2}
    recipe = pipeline_recipe(name=name)
    assert recipe["epochs"] == 2 and recipe["ema_start_epoch"] == 0 and recipe["ema_decay"] == 0.998
    version.params = {"model_name": "vit-h16-128", "epochs": "3", "ema_decay": "None", "ema_start_epoch": "0"}
    version.save()
    settings.PIPELINE_RECIPE = {}
    assert pipeline_recipe(name=name) == {"variant": "vit-h16-128", "epochs": 3, "ema_start_epoch": 0}
