"""A real training worker SIGKILLed in the middle of a job: the job must end ``failed`` with a
reason (the reaper finds its silent heartbeat), never stay ``running``.

The worker is a separate process on the test database, the embedded broker and a throw-away
MLflow store; the job is queued by the service on commit, as the console queues it.
"""

from __future__ import annotations

import contextlib
import signal
import time

import psutil
import pytest
from django.utils import timezone

from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.models import DatasetVersion, TrainingJob
from mlcore.services.training_jobs import training_job_create, training_jobs_reap
from radviewer.audit.models import AuditEvent
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _kill_tree(pid: int) -> None:
    """SIGKILL the worker and everything it started: nothing gets to clean up."""
    main = psutil.Process(pid)
    for proc in [*main.children(recursive=True), main]:
        with contextlib.suppress(psutil.NoSuchProcess):  # gone already
            proc.send_signal(signal.SIGKILL)


def test_a_worker_killed_mid_job_leaves_the_job_failed_with_a_reason(
        ml_admin, settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    make_synthetic_dataset(LocalDatasetStore(tmp_path / "store"), per_class=4, size=48, seed=5)
    dataset = DatasetVersion.objects.create(slug="synth", store_uri=str(tmp_path / "store"))
    env = {"RADVIEWER_TRAINING_HEARTBEAT_SECONDS": "1"}
    with WorkerProcess(queues="training", extra_env=env) as worker:
        job = training_job_create(
            actor=ml_admin, dataset_version=dataset, variant="vit-tiny-test", epochs=500,
            batch_size=16, precision="32-true", max_train_batches=1, log_system_metrics=False)

        def training_and_beating():
            row = TrainingJob.objects.get(pk=job.pk)
            return (row if row.state == "running" and row.step >= 1 and row.heartbeat_at
                    and row.heartbeat_at > row.started_at else None)

        try:
            running = wait_until(training_and_beating, timeout=180, interval=0.3,
                                 what="job running with a heartbeat")
        except TimeoutError:
            pytest.fail(f"{TrainingJob.objects.get(pk=job.pk).__dict__}\n{worker.log()[-4000:]}")
        assert "mlcore.training_job_run" in worker.log()
        assert running.worker and running.attempts == 1
        _kill_tree(worker.proc.pid)
        worker.proc.wait(timeout=30)
        assert worker.proc.returncode == -signal.SIGKILL

    left = TrainingJob.objects.get(pk=job.pk)
    assert left.state == "running"  # a killed worker writes nothing: only the reaper can tell
    last = left.heartbeat_at
    time.sleep(2.5)
    assert TrainingJob.objects.get(pk=job.pk).heartbeat_at == last  # the stamps stopped
    assert training_jobs_reap(stale_after_s=2) == [job.pk]
    failed = TrainingJob.objects.get(pk=job.pk)
    assert failed.state == "failed" and failed.finished_at >= last
    assert failed.failure_reason == ("worker stopped responding; last heartbeat at "
                                     f"{last.isoformat(timespec='seconds')}")
    assert failed.finished_at <= timezone.now()
    event = AuditEvent.objects.get(action="training_job.failed")
    assert event.object_id == str(job.pk) and event.details["worker"] == running.worker
