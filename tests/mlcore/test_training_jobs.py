"""Training jobs end to end: the form's bad inputs, queueing, a real tiny run inline, cancel,
the live partial, the reaper and the redelivery path. (A real worker killed mid-job:
tests/integration/test_training_worker.py.)"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.models import DatasetVersion, ModelAlias, ModelVersion, TrainingJob
from mlcore.services.training_jobs import (
    REDELIVERED_REASON,
    TrainingJobError,
    training_job_cancel,
    training_job_create,
    training_job_run,
    training_jobs_reap,
)
from radviewer.audit.models import AuditEvent
from radviewer.lib.tasks import task_by_name

TINY = {"variant": "vit-tiny-test", "batch_size": 16, "precision": "32-true"}


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-store")
    make_synthetic_dataset(LocalDatasetStore(root), per_class=6, size=48, seed=11,
                           fractions={"train": 0.5, "val": 0.2, "test": 0.1, "final_eval": 0.2})
    return root


@pytest.fixture
def registry(settings, tmp_path):
    """A throw-away MLflow store per test: version numbers start at 1."""
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    return settings.MLFLOW_TRACKING_URI


def _dataset(root, *, slug="synth", **kw) -> DatasetVersion:
    return DatasetVersion.objects.create(slug=slug, store_uri=str(root), **kw)


def _broken_store(tmp_path, drop) -> LocalDatasetStore:
    store = LocalDatasetStore(tmp_path / "broken")
    make_synthetic_dataset(store, per_class=3, size=32, seed=2)
    store.write_manifest([r for r in store.manifest() if not drop(r)])
    return store


def _form(dataset: DatasetVersion, **overrides) -> dict:
    data = {"dataset_version": dataset.pk, "variant": "vit-tiny-test", "image_size": "",
            "epochs": 2, "batch_size": 16, "seed": 42, "lr": 5e-4, "precision": "auto"}
    data.update(overrides)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize(("overrides", "message"), [
    ({"variant": "resnet-9000"}, "unknown variant &#x27;resnet-9000&#x27;; accepted:"),
    ({"epochs": 0}, "must be a whole number from 1 to 500, got 0"),
    ({"epochs": 501}, "must be a whole number from 1 to 500, got 501"),
    ({"batch_size": 0}, "must be a whole number from 1 to 512, got 0"),
    ({"image_size": 16}, "must be a whole number from 32 to 512, got 16"),
    ({"lr": 0}, "must be greater than 0 and at most 1"),
    ({"precision": "8-bit"}, "unknown precision &#x27;8-bit&#x27;"),
    ({"epochs": "many"}, "Enter a whole number."),
])
def test_bad_recipe_is_shown_on_its_field_and_nothing_is_written(
        ml_admin_client, store_root, overrides, message):
    dataset = _dataset(store_root)
    response = ml_admin_client.post(reverse("mlcore:training_job_new"), _form(dataset, **overrides))
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and 'class="field-error"' in body
    assert not TrainingJob.objects.exists()
    assert not AuditEvent.objects.filter(action="training_job.created").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "message"), [
    ("importing", "dataset version bad is importing, not ready"),
    ("evaluation", "dataset version bad is an evaluation-only set; it is never trained on"),
    ("empty-val", "cannot be trained on: empty split(s): val"),
    ("class-without-train", "class(es) without train images: lung-covid"),
    ("missing-store", "cannot be trained on: empty split(s): train, val"),
])
def test_dataset_that_cannot_be_trained_on_is_refused_with_the_reason(
        ml_admin_client, tmp_path, case, message):
    if case == "empty-val":
        root = _broken_store(tmp_path, lambda r: r.split == "val").root
    elif case == "class-without-train":
        root = _broken_store(tmp_path, lambda r: r.split == "train"
                             and r.class_key == "lung-covid").root
    elif case == "missing-store":
        root = tmp_path / "nothing-here"
    else:
        root = _broken_store(tmp_path, lambda r: False).root
    kw = {"importing": {"status": DatasetVersion.Status.IMPORTING},
          "evaluation": {"kind": DatasetVersion.Kind.EVALUATION}}.get(case, {})
    dataset = _dataset(root, slug="bad", **kw)
    response = ml_admin_client.post(reverse("mlcore:training_job_new"), _form(dataset))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_every_problem_is_named_at_once(ml_admin_client, tmp_path):
    dataset = _dataset(_broken_store(tmp_path, lambda r: r.split == "val").root, slug="bad")
    response = ml_admin_client.post(reverse("mlcore:training_job_new"),
                                    _form(dataset, epochs=0, batch_size=513))
    body = response.content.decode()
    assert response.status_code == 400 and body.count('class="field-error"') == 3
    assert "empty split(s): val" in body and "from 1 to 512, got 513" in body
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_form_shows_the_recipe_defaults(ml_admin_client, store_root):
    body = ml_admin_client.get(reverse("mlcore:training_job_new")).content.decode()
    assert "No dataset version is known yet" in body
    _dataset(store_root)
    body = ml_admin_client.get(reverse("mlcore:training_job_new")).content.decode()
    assert 'name="epochs" value="40"' in body and 'name="batch_size" value="32"' in body
    assert 'value="vit-h16-128" selected' in body and 'value="auto" selected' in body
    assert "synth" in body and "No dataset version is known yet" not in body


@pytest.mark.django_db
def test_a_job_created_through_the_url_is_queued_on_commit(
        ml_admin_client, ml_admin, store_root, django_capture_on_commit_callbacks, monkeypatch):
    sent: list[dict] = []
    task = task_by_name("mlcore.training_job_run")
    monkeypatch.setattr(task, "apply_async", lambda **kw: sent.append(kw))
    dataset = _dataset(store_root)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = ml_admin_client.post(reverse("mlcore:training_job_new"), _form(dataset))
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "mlcore:training_job", args=[job.pk])
    assert len(callbacks) == 1 and sent == [{"kwargs": {"job_id": job.pk}}]
    assert task.name == "mlcore.training_job_run"
    assert job.state == "queued" and job.created_by == ml_admin and job.dataset_version == dataset
    assert job.config["model_name"] == "vit-tiny-test" and job.config["epochs"] == 2
    assert job.config["store_uri"] == str(store_root) and job.config["lr"] == 5e-4
    assert job.config["weight_decay"] == 0.05  # the rest of the recipe: the starter's
    event = AuditEvent.objects.get(action="training_job.created")
    assert event.actor == ml_admin and event.object_id == str(job.pk)
    listing = ml_admin_client.get(reverse("mlcore:training_jobs")).content.decode()
    assert f'href="{reverse("mlcore:training_job", args=[job.pk])}"' in listing
    assert "Queued" in listing and "synth" in listing and "ml_admin" in listing


@pytest.mark.django_db(transaction=True)
def test_a_tiny_job_runs_inline_registers_a_candidate_and_shows_its_curves(
        ml_admin_client, ml_admin, store_root, registry, settings):
    settings.TRAINING_HEARTBEAT_SECONDS = 1
    dataset = _dataset(store_root)
    job = training_job_create(actor=ml_admin, dataset_version=dataset, epochs=2,
                              max_train_batches=2, log_system_metrics=False, enqueue=False,
                              **TINY)
    lines: list[str] = []
    job = training_job_run(job_id=job.pk, echo=lines.append)
    assert job.state == "succeeded", job.log_tail
    assert [h["epoch"] for h in job.history] == [1, 2] and job.epoch == job.epochs == 2
    assert all("val_macro_f1" in h and "train_loss" in h for h in job.history)
    assert job.step == 0 or job.step <= job.total_steps == 4
    assert job.attempts == 1 and job.worker and job.finished_at >= job.started_at
    assert job.heartbeat_at > job.started_at  # the heartbeat thread stamped the row
    assert job.model_version == "1" and job.run_id and job.model_name == settings.MLFLOW_REGISTERED_MODEL
    assert sum(line.startswith("epoch ") for line in lines) == 2 and "epoch 2/2" in job.log_tail

    from mlcore.ml import tracking

    mv = tracking.client(registry).get_model_version(job.model_name, "1")
    assert mv.run_id == job.run_id
    run_tags = tracking.client(registry).get_run(job.run_id).data.tags
    assert run_tags["radviewer.training_job"] == str(job.pk)
    assert "radviewer.parent_version" not in run_tags  # nothing was in production
    assert tracking.get_version_by_alias(job.model_name, "candidate", tracking_uri=registry) == "1", job.log_tail
    assert ModelVersion.objects.get(version="1").run_id == job.run_id
    assert ModelAlias.objects.get(alias="candidate").model_version.version == "1"
    # Its evaluation report on the locked set of the dataset it trained on came first (the
    # gate's one requirement for a candidate), then the move, with its change record.
    from mlcore.models import ChangeRecord, Evaluation

    evaluation = Evaluation.objects.get(model_version__version="1")
    assert evaluation.status == "succeeded" and evaluation.dataset_version == dataset and evaluation.n > 0
    record = ChangeRecord.objects.get(alias="candidate", to_version="1")
    assert record.gate["passed"] and record.actor == ml_admin
    assert f"evaluating v1 on the locked set of {dataset.slug}" in job.log_tail
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"training_job.created", "training_job.succeeded", "model.registered",
            "model.alias_set"} <= actions

    page = ml_admin_client.get(reverse("mlcore:training_job", args=[job.pk])).content.decode()
    assert "Succeeded" in page and "epoch <strong>2/2</strong>" in page
    assert '<a href="/ml/versions/1/">version 1</a>' in page
    assert "<svg" in page and "Validation macro-F1" in page and job.run_id in page
    assert 'hx-trigger="every 2s"' not in page  # terminal: the partial stops polling
    assert "Cancel job" not in page
    settings.MLFLOW_UI_URL = "http://mlflow.example:5000/"
    page = ml_admin_client.get(reverse("mlcore:training_job", args=[job.pk])).content.decode()
    assert f'href="http://mlflow.example:5000/#/runs/{job.run_id}"' in page

    # Run again (a duplicate message): the job is left as it is.
    assert training_job_run(job_id=job.pk).state == "succeeded"
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_through_the_url_stops_a_running_job_and_registers_nothing(
        ml_admin_client, ml_admin, store_root, registry):
    dataset = _dataset(store_root)
    job = training_job_create(actor=ml_admin, dataset_version=dataset, epochs=300,
                              max_train_batches=1, log_system_metrics=False, enqueue=False,
                              **TINY)
    outcome: dict = {}

    def cancel_once_it_steps():
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                row = TrainingJob.objects.get(pk=job.pk)
                if row.state == "running" and row.step >= 1:
                    client = Client()
                    client.force_login(ml_admin)
                    outcome["response"] = client.post(
                        reverse("mlcore:training_job_cancel", args=[job.pk]))
                    outcome["epoch_at_cancel"] = row.epoch
                    return
                time.sleep(0.1)
        finally:
            connections.close_all()

    canceller = threading.Thread(target=cancel_once_it_steps)
    canceller.start()
    job = training_job_run(job_id=job.pk)
    canceller.join()
    assert outcome["response"].status_code == 302
    assert job.state == "cancelled" and job.cancel_requested, job.log_tail
    assert job.epoch < 300 and job.run_id and not job.model_version
    assert "nothing was registered" in job.log_tail
    assert not ModelVersion.objects.exists() and not ModelAlias.objects.exists()
    from mlcore.ml import tracking

    assert tracking.client(registry).get_run(job.run_id).info.status == "KILLED"
    assert not tracking.client(registry).search_registered_models()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["training_job.created", "training_job.cancel_requested",
                       "training_job.cancelled"]


@pytest.mark.django_db
def test_cancel_of_a_queued_job_is_immediate_and_of_an_ended_job_is_refused(
        ml_admin_client, ml_admin, store_root):
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root), **TINY)
    url = reverse("mlcore:training_job_cancel", args=[job.pk])
    response = ml_admin_client.post(url, follow=True)
    job.refresh_from_db()
    assert job.state == "cancelled" and job.finished_at and "cancelled." in response.content.decode()
    # The message that was queued for it finds an ended job and does nothing.
    assert training_job_run(job_id=job.pk).state == "cancelled"
    response = ml_admin_client.post(url, follow=True)
    assert "has already cancelled; there is nothing to cancel" in response.content.decode()
    with pytest.raises(TrainingJobError, match="nothing to cancel"):
        training_job_cancel(job=job, actor=ml_admin)
    assert AuditEvent.objects.filter(action="training_job.cancel_requested").count() == 1
    assert ml_admin_client.get(url).status_code == 405


@pytest.mark.django_db
def test_progress_partial_for_htmx_polls_while_running_with_epoch_step_and_eta(
        ml_admin_client, ml_admin, store_root):
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root),
                              epochs=5, **TINY)
    TrainingJob.objects.filter(pk=job.pk).update(
        state="running", started_at=timezone.now(), heartbeat_at=timezone.now(), epoch=2,
        epochs=5, step=7, total_steps=15, log_tail="epoch 1/5  train_loss 2.1000\nepoch 2/5",
        history=[{"epoch": 1, "epochs": 5, "seconds": 10.0, "train_loss": 2.1, "val_loss": 2.0,
                  "val_macro_f1": 0.2},
                 {"epoch": 2, "epochs": 5, "seconds": 20.0, "train_loss": 1.7, "val_loss": 1.8,
                  "val_macro_f1": 0.35}])
    url = reverse("mlcore:training_job", args=[job.pk])
    partial = ml_admin_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="training-progress"')
    assert "<html" not in partial and f'hx-get="{url}" hx-trigger="every 2s"' in partial
    assert "epoch <strong>2/5</strong>" in partial and "step 7/15" in partial
    assert "15.0 s per epoch" in partial and "about 45 s left" in partial  # 3 epochs x 15 s
    assert "best 0.350" in partial and "<svg" in partial and "epoch 1/5  train_loss" in partial
    assert "Cancel job" in partial
    full = ml_admin_client.get(url).content.decode()
    assert "<html" in full and 'hx-trigger="every 2s"' in full and "vit-tiny-test" in full
    TrainingJob.objects.filter(pk=job.pk).update(state="failed", failure_reason="Boom: no disk")
    partial = ml_admin_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in partial and "Failed: Boom: no disk" in partial


@pytest.mark.django_db
def test_reaper_fails_a_running_job_whose_heartbeat_stopped(ml_admin, store_root):
    dataset = _dataset(store_root)
    stale = training_job_create(actor=ml_admin, dataset_version=dataset, **TINY)
    fresh = training_job_create(actor=ml_admin, dataset_version=dataset, **TINY)
    long_ago = timezone.now() - timedelta(minutes=10)
    TrainingJob.objects.filter(pk=stale.pk).update(state="running", started_at=long_ago,
                                                   heartbeat_at=long_ago)
    TrainingJob.objects.filter(pk=fresh.pk).update(state="running", started_at=long_ago,
                                                   heartbeat_at=timezone.now())
    assert training_jobs_reap(stale_after_s=120) == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.state == "failed" and stale.finished_at
    assert stale.failure_reason == ("worker stopped responding; last heartbeat at "
                                    f"{long_ago.isoformat(timespec='seconds')}")
    assert fresh.state == "running"
    event = AuditEvent.objects.get(action="training_job.failed")
    assert event.object_id == str(stale.pk) and "last heartbeat" in event.details["reason"]
    assert training_jobs_reap(stale_after_s=120) == []  # idempotent


@pytest.mark.django_db
def test_a_redelivered_message_fails_the_job_its_dead_worker_left_running(ml_admin, store_root):
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root), **TINY)
    silent_since = timezone.now() - timedelta(minutes=5)
    TrainingJob.objects.filter(pk=job.pk).update(state="running", started_at=silent_since,
                                                 heartbeat_at=silent_since, attempts=1)
    job = training_job_run(job_id=job.pk)
    assert job.state == "failed" and job.failure_reason == REDELIVERED_REASON
    assert job.attempts == 1  # never started a second time
    assert AuditEvent.objects.filter(action="training_job.failed").count() == 1


@pytest.mark.django_db
def test_a_duplicate_delivery_leaves_a_job_with_a_live_worker_alone(ml_admin, store_root):
    """Redis re-delivers a long task's message after its visibility timeout while the first
    worker still trains: the fresh heartbeat says so."""
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root), **TINY)
    TrainingJob.objects.filter(pk=job.pk).update(state="running", started_at=timezone.now(),
                                                 heartbeat_at=timezone.now(), attempts=1)
    job = training_job_run(job_id=job.pk)
    assert job.state == "running" and job.attempts == 1 and not job.failure_reason
    assert not AuditEvent.objects.filter(action="training_job.failed").exists()


@pytest.mark.django_db
def test_a_failing_run_ends_failed_with_a_reason_and_the_traceback(
        ml_admin, store_root, registry, settings):
    # The test's open transaction would hold SQLite's write lock against the heartbeat
    # thread's own connection; this run ends long before a first stamp.
    settings.TRAINING_HEARTBEAT_SECONDS = 3600
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root), **TINY)
    # The store vanished between queueing and running (a deleted folder, an unmounted disk).
    config = {**job.config, "store_uri": str(store_root) + "-gone"}
    TrainingJob.objects.filter(pk=job.pk).update(config=config)
    job = training_job_run(job_id=job.pk)
    assert job.state == "failed" and job.failure_reason.startswith("ValueError: ")
    assert "empty split" in job.failure_reason and "\n" not in job.failure_reason
    assert "Traceback (most recent call last)" in job.log_tail
    assert AuditEvent.objects.filter(action="training_job.failed").exists()


@pytest.mark.django_db
def test_a_radiologist_gets_403_on_every_training_url(radiologist_client, ml_admin, store_root):
    job = training_job_create(actor=ml_admin, dataset_version=_dataset(store_root), **TINY)
    for url in (reverse("mlcore:training_jobs"), reverse("mlcore:training_job_new"),
                reverse("mlcore:training_job", args=[job.pk]),
                reverse("mlcore:training_job_cancel", args=[job.pk])):
        assert radiologist_client.get(url).status_code == 403, url
        assert radiologist_client.post(url).status_code == 403, url
    job.refresh_from_db()
    assert job.state == "queued" and not job.cancel_requested


def test_beat_reaps_training_jobs_every_minute():
    from radviewer.celery import beat_schedule

    entry = beat_schedule(30)["stale-work-reap"]
    assert entry["task"] == "mlcore.stale_work_reap" and entry["schedule"] == 60.0
    assert entry["options"]["queue"] == "default"
    assert task_by_name("mlcore.stale_work_reap").name == "mlcore.stale_work_reap"
    assert task_by_name("mlcore.training_job_run").soft_time_limit >= 6 * 3600


@pytest.mark.django_db
def test_the_task_drops_a_message_for_a_job_that_no_longer_exists(caplog):
    task_by_name("mlcore.training_job_run")(job_id=987654)
    assert "training job 987654 no longer exists" in caplog.text
