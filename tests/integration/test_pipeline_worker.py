"""Continuous training end to end with a real training worker: the Nth reader correction
fires the corrections trigger (the beat task's body), the worker snapshots a dataset version
(training data + the confirmed corrections), trains the tiny recipe, evaluates, registers the
version as candidate with its report through MLflow and puts it in shadow; a second trigger
(a drift alarm) during the run waits, then runs after it. The time from the Nth correction
to the candidate in shadow is printed (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.models import DatasetVersion, Evaluation, ModelAlias, PipelineRun, ReviewOutcome, RolloutPolicy
from mlcore.services.feedback import feedback_sample_add
from mlcore.services.pipeline import pipeline_check, pipeline_trigger_from_drift
from mlcore.services.registry import registry_sync
from tests.clinical.factories import chest_png
from tests.support.models import register_random_model
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RECIPE = {"variant": "vit-tiny-test", "epochs": 1, "batch_size": 16, "precision": "32-true",
          "max_train_batches": 1, "log_system_metrics": False}


def test_corrections_to_candidate_in_shadow_with_a_real_worker(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    settings.PIPELINE_CORRECTIONS = 3
    settings.PIPELINE_RECIPE = RECIPE
    name = settings.MLFLOW_REGISTERED_MODEL
    make_synthetic_dataset(LocalDatasetStore(tmp_path / "store"), per_class=8, size=48, seed=5,
                           fractions={"train": 0.5, "val": 0.25, "final_eval": 0.25})
    env = {"RADVIEWER_PIPELINE_RECIPE": json.dumps(RECIPE), "RADVIEWER_TRAINING_HEARTBEAT_SECONDS": "1"}
    # A version in production (the shadow predicts after it), as on any running installation.
    register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name=name)
    registry_sync(name=name)
    try:
        _run(settings, tmp_path, env, name)
    finally:  # the snapshots land in the worker's VAR_DIR/datasets (named per run and time)
        for dataset in DatasetVersion.objects.filter(source_format="snapshot"):
            shutil.rmtree(dataset.store_uri.removeprefix("file://"), ignore_errors=True)


def _run(settings, tmp_path, env, name):
    with WorkerProcess(queues="training", extra_env=env) as worker:
        # three confirmed corrections (as review_create writes them), their images in feedback
        for i, cls in enumerate(("lung-opacity", "lung-covid", "lung-opacity")):
            feedback_sample_add(png_bytes=chest_png(seed=40 + i), class_key=cls, patient_key=f"fb-{i}",
                                lineage={"study": f"s{i}", "verdict": "corrected"})
            ReviewOutcome.objects.create(model_name=name, model_version="0", prediction_ref=f"p{i}",
                                         predicted_class="lung-normal", confirmed_class=cls, verdict="corrected")
        nth_correction_at = time.monotonic()
        [run] = pipeline_check()  # the beat task's body: the threshold is reached
        assert run.trigger == "corrections"

        def running():
            row = PipelineRun.objects.get(pk=run.pk)
            return row if row.state == "running" else None

        try:
            wait_until(running, timeout=120, interval=0.2, what="pipeline run running")
        except TimeoutError:
            pytest.fail(f"{PipelineRun.objects.get(pk=run.pk).__dict__}\n{worker.log()[-4000:]}")
        second = pipeline_trigger_from_drift(detector="mmd", model_version="0", reason="drift alarm in the test")
        assert second.state == "queued" and second.message == f"waiting for run #{run.pk} (running) to finish"

        def shadowed():
            row = PipelineRun.objects.get(pk=run.pk)
            shadow = next(s for s in row.steps if s["name"] == "shadow")
            if row.state in ("failed", "retrying"):
                return row
            return row if shadow["status"] == "done" else None

        try:
            wait_until(shadowed, timeout=480, interval=0.5, what="candidate in shadow")
        except TimeoutError:
            pytest.fail(f"{PipelineRun.objects.get(pk=run.pk).__dict__}\n{worker.log()[-4000:]}")
        seconds = time.monotonic() - nth_correction_at
        done = wait_until(lambda: PipelineRun.objects.filter(pk=run.pk, state__in=("succeeded", "failed")).first(),
                          timeout=60, interval=0.5, what="run finished")
        assert done.state == "succeeded", f"{done.error}\n{done.steps}\n{worker.log()[-4000:]}"
        print(f"\nBENCHMARK nth-correction-to-shadow: {seconds:.1f} s")
        # the waiting run starts once the first ended, and goes through as well
        after = wait_until(lambda: PipelineRun.objects.filter(pk=second.pk, state__in=("succeeded", "failed")
                                                              ).first(), timeout=480, interval=0.5,
                           what="second run finished")
        assert after.state == "succeeded", f"{after.error}\n{after.steps}\n{worker.log()[-4000:]}"

    assert [s["status"] for s in done.steps] == ["done"] * 6
    snapshot = done.dataset_version
    lineage = snapshot.options["lineage"]
    assert snapshot.status == "ready" and lineage["feedback_images"] == 3 and lineage["pipeline_run"] == done.pk
    assert snapshot.manifest_hash == LocalDatasetStore(snapshot.store_uri.removeprefix("file://")).manifest_hash()
    assert done.training_job.state == "succeeded" and done.training_job.dataset_version == snapshot
    assert done.training_job.config["include_feedback"] is True
    assert Evaluation.objects.filter(model_version__version=done.model_version, dataset_version=snapshot,
                                     status="succeeded").exists()
    # the second run registered a newer candidate; the first's version was candidate before it
    assert after.model_version != done.model_version and after.trigger == "drift"
    assert ModelAlias.objects.get(name=name, alias="candidate").model_version.version == after.model_version
    policy = RolloutPolicy.objects.get(name=name)
    assert policy.shadow_candidate and policy.shadow_started_at is not None
    assert "awaiting the admin's decision" in done.steps[-1]["message"]
    # the admin decides: production stays where it was, no canary started by itself
    assert ModelAlias.objects.get(name=name, alias="production").model_version.version == "1"
    assert not ModelAlias.objects.filter(name=name, alias="canary").exists()
    assert DatasetVersion.objects.filter(source_format="snapshot").count() == 2
