"""MLflow as production runs it (issue 16 item 1): an `mlflow server` process with a
PostgreSQL backend store and S3 artifacts (moto's standalone server is the S3 stand-in: no S3
server comes from the package registries), and RadViewer pointed at it over HTTP only.

A real training worker trains and registers a version through it, the promotion service moves
aliases through it, and a real inference worker loads the model from it and triages an upload.
The artifacts land in the bucket (proxied by the tracking server, so no RadViewer process holds
bucket credentials for them), the runs and versions in PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.services import free_port, port_open, require
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CREDS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}




def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s\n{log.read_text()[-3000:]}")


@pytest.fixture
def mlflow_server(tmp_path):
    require(port_open("127.0.0.1", 5432), "PostgreSQL at 127.0.0.1:5432")
    import boto3
    import psycopg

    db = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    s3_port, mlflow_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    env = {**os.environ, **CREDS}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        s3_log = tmp_path / "moto.log"
        procs.append(subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                      stdout=s3_log.open("w"), stderr=subprocess.STDOUT, env=env))
        s3_url = f"http://127.0.0.1:{s3_port}"
        _wait_http(f"{s3_url}/moto-api/", procs[-1], s3_log)
        s3 = boto3.client("s3", endpoint_url=s3_url, **{k.lower(): v for k, v in CREDS.items()
                                                        if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
        s3.create_bucket(Bucket="radviewer")
        log = tmp_path / "mlflow.log"
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--workers", "1",
             "--backend-store-uri", f"postgresql://postgres@127.0.0.1:5432/{db}",
             "--artifacts-destination", "s3://radviewer/mlflow"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**env, "MLFLOW_S3_ENDPOINT_URL": s3_url}))
        url = f"http://127.0.0.1:{mlflow_port}"
        _wait_http(f"{url}/health", procs[-1], log, timeout=180)
        yield {"url": url, "s3": s3, "db": db, "log": log}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_train_register_promote_and_predict_through_an_mlflow_server(
        mlflow_server, settings, tmp_path, ml_admin, radiologist_client, monkeypatch):
    import psycopg

    from clinical.models import Prediction
    from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
    from mlcore.models import DatasetVersion, TrainingJob
    from mlcore.services.promotion import acceptance_criteria_update, alias_move
    from mlcore.services.registry import registry_sync
    from mlcore.services.training_jobs import training_job_create
    from tests.clinical.study_rows import upload_png

    name = f"radviewer-server-test-{uuid.uuid4().hex[:6]}"
    settings.MLFLOW_TRACKING_URI = mlflow_server["url"]
    settings.MLFLOW_REGISTERED_MODEL = name
    # Nothing in this process or the workers may reach the bucket itself: no S3 endpoint.
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    env = {"RADVIEWER_REGISTERED_MODEL": name, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    store = tmp_path / "store"
    make_synthetic_dataset(LocalDatasetStore(store), per_class=8, size=48, seed=5,
                           fractions={"train": 0.5, "val": 0.25, "final_eval": 0.25})
    dataset = DatasetVersion.objects.create(slug="synth-server", store_uri=str(store))

    with WorkerProcess(queues="training", extra_env=env) as worker:
        job = training_job_create(actor=ml_admin, dataset_version=dataset, variant="vit-tiny-test", epochs=1,
                                  batch_size=16, precision="32-true", max_train_batches=1,
                                  log_system_metrics=False)
        done = wait_until(lambda: TrainingJob.objects.filter(pk=job.pk, state__in=("succeeded", "failed")).first(),
                          timeout=420, interval=1, what="training job finished")
        assert done.state == "succeeded", f"{done.failure_reason}\n{worker.log()[-4000:]}"
    version = done.model_version
    assert version
    # The job evaluated its version on the dataset's locked set, through the server.
    from mlcore.models import Evaluation

    evaluation = Evaluation.objects.filter(model_version__version=version, model_version__name=name).first()
    assert evaluation is not None and evaluation.status == "succeeded", done.log_tail

    registry_sync(name=name)
    # Phantom-trained: this test store's criteria let a synthetic version serve (the default forbids it).
    acceptance_criteria_update(actor=ml_admin, name=name, forbid_synthetic_in_production=False)
    alias_move(actor=ml_admin, alias="production", version=version, name=name,
               reason="server round trip test", expected_current="",
               override_justification="synthetic model in a test store, never served to readers")

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server["url"], registry_uri=mlflow_server["url"])
    assert client.get_model_version_by_alias(name, "production").version == version
    source = client.get_model_version(name, version).source
    # Stored through the server's artifact proxy, in the bucket; nothing local to the client.
    assert source.startswith(("models:/", "mlflow-artifacts:")), source
    keys = [o["Key"] for o in mlflow_server["s3"].list_objects_v2(Bucket="radviewer").get("Contents", [])]
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys), keys[:20]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{mlflow_server['db']}") as conn:
        registered = conn.execute("SELECT version FROM model_versions WHERE name = %s", (name,)).fetchall()
    assert [str(v) for (v,) in registered] == [version]

    with WorkerProcess(queues="inference", extra_env=env) as worker:
        image = upload_png(radiologist_client, seed=11)
        prediction = wait_until(
            lambda: Prediction.objects.filter(image=image, status__in=("succeeded", "failed")).first(),
            timeout=180, what="prediction through the MLflow server")
        assert prediction.status == "succeeded", f"{prediction.failure_reason}\n{worker.log()[-3000:]}"
        assert (prediction.model_name, prediction.model_version) == (name, version)
