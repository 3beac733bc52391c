"""Metrics in one process: what the services record, what the collectors read from the database,
and how /metrics behaves when a source cannot be read. The multi-process path (gunicorn and a
Celery worker summed by /metrics, Prometheus scraping it) is tests/integration/test_monitoring.py.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from clinical.models import Prediction
from clinical.services.predictions import prediction_mark_failed, prediction_store_result
from mlcore.models import TrainingJob
from mlcore.services.feedback import review_outcome_record
from mlcore.services.inference import TriageOutput
from radviewer.ops import collectors
from radviewer.ops.collectors import database_collector
from radviewer.ops.models import WorkerHeartbeat
from tests.clinical.factories import ImageFactory, PredictionFactory, StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cache(settings):
    settings.METRICS_CACHE_SECONDS = 0
    database_collector.clear()
    yield
    database_collector.clear()


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def output(**overrides) -> TriageOutput:
    base = {"model_name": "radviewer-triage", "model_version": "7", "arm": "canary",
            "probabilities": {"lung-normal": 0.2, "covid": 0.8}, "top_class": "covid", "confidence": 0.8,
            "out_of_scope": False, "ood_score": None, "ood_reason": None, "ood_percentile": None,
            "ood_threshold_percentile": None, "scope": "cxr", "scope_source": "model", "scope_probability": 0.99,
            "urgent_probability": 0.8, "latency_ms": 1500.0, "heatmap_png": None, "heatmap_npy": None}
    return TriageOutput(**{**base, **overrides})


def running_prediction(version: str = "7", arm: str = "canary") -> Prediction:
    return PredictionFactory(image=ImageFactory(study=StudyFactory()), model_version=version, arm=arm,
                             status=Prediction.Status.RUNNING)


def test_a_stored_prediction_records_class_confidence_latency_and_scope(django_capture_on_commit_callbacks):
    model = {"model_version": "7", "arm": "canary"}
    before = {
        "n": value("radviewer_predictions_total", predicted_class="covid", **model),
        "oos": value("radviewer_predictions_out_of_scope_total", **model),
        "lat": value("radviewer_inference_latency_seconds_count", **model),
        "lat_sum": value("radviewer_inference_latency_seconds_sum", **model),
        "conf_le_09": value("radviewer_prediction_confidence_bucket", le="0.9", **model),
        "conf_le_07": value("radviewer_prediction_confidence_bucket", le="0.7", **model),
    }
    with django_capture_on_commit_callbacks(execute=True):
        prediction_store_result(prediction_id=running_prediction().pk, output=output())
        prediction_store_result(prediction_id=running_prediction().pk, output=output(out_of_scope=True))
    assert value("radviewer_predictions_total", predicted_class="covid", **model) == before["n"] + 2
    assert value("radviewer_predictions_out_of_scope_total", **model) == before["oos"] + 1
    assert value("radviewer_inference_latency_seconds_count", **model) == before["lat"] + 2
    assert value("radviewer_inference_latency_seconds_sum", **model) == pytest.approx(before["lat_sum"] + 3.0)
    assert value("radviewer_prediction_confidence_bucket", le="0.9", **model) == before["conf_le_09"] + 2
    assert value("radviewer_prediction_confidence_bucket", le="0.7", **model) == before["conf_le_07"]
    # the failure series of the version exists from its first prediction
    assert REGISTRY.get_sample_value("radviewer_prediction_failures_total", model) is not None


def test_a_duplicate_delivery_is_not_counted_twice(django_capture_on_commit_callbacks):
    prediction = running_prediction(version="8")
    labels = {"model_version": "8", "arm": "canary", "predicted_class": "covid"}
    before = value("radviewer_predictions_total", **labels)
    with django_capture_on_commit_callbacks(execute=True):
        prediction_store_result(prediction_id=prediction.pk, output=output(model_version="8"))
        prediction_store_result(prediction_id=prediction.pk, output=output(model_version="8"))
    assert value("radviewer_predictions_total", **labels) == before + 1


def test_a_failed_prediction_is_counted_by_version_and_arm(django_capture_on_commit_callbacks):
    labels = {"model_version": "9", "arm": "shadow"}
    before = value("radviewer_prediction_failures_total", **labels)
    with django_capture_on_commit_callbacks(execute=True):
        prediction_mark_failed(prediction_id=running_prediction("9", "shadow").pk, reason="RuntimeError: boom")
    assert value("radviewer_prediction_failures_total", **labels) == before + 1


def test_ingest_refusals_are_counted_by_reason(radiologist_client):
    before = {r: value("radviewer_ingest_refusals_total", reason=r) for r in ("unsupported_type", "empty_file")}
    for name, data in (("scan.png", b"%PDF-1.7 not an image"), ("empty.png", b"")):
        response = radiologist_client.post(reverse("clinical:upload_file"), {"file": SimpleUploadedFile(name, data)},
                                           HTTP_HX_REQUEST="true")
        assert 400 <= response.status_code < 500
    assert value("radviewer_ingest_refusals_total", reason="unsupported_type") == before["unsupported_type"] + 1
    assert value("radviewer_ingest_refusals_total", reason="empty_file") == before["empty_file"] + 1


def test_database_metrics_read_queues_heartbeats_agreement_and_jobs(client):
    now = timezone.now()
    for minutes in (3, 10):
        p = PredictionFactory(image=ImageFactory(study=StudyFactory()), status=Prediction.Status.QUEUED)
        Prediction.objects.filter(pk=p.pk).update(queued_at=now - timedelta(minutes=minutes))
    WorkerHeartbeat.objects.create(queue="inference", hostname="box-1", seen_at=now - timedelta(seconds=40), beats=3)
    for i, (predicted, confirmed, verdict) in enumerate([("covid", "covid", "agree"), ("covid", "lung-normal", "corrected"),
                                                         ("covid", "", "uncertain"), ("lung-normal", "lung-normal", "agree")]):
        review_outcome_record(prediction_ref=f"p{i}", model_name="radviewer-triage", model_version="4",
                              predicted_class=predicted, confirmed_class=confirmed, verdict=verdict)
    TrainingJob.objects.create(state=TrainingJob.State.SUCCEEDED)
    failed_at = now - timedelta(minutes=5)
    TrainingJob.objects.create(state=TrainingJob.State.FAILED, finished_at=failed_at)
    TrainingJob.objects.create(state=TrainingJob.State.FAILED, finished_at=now - timedelta(days=2))

    m = scrape(client)
    assert m[("radviewer_queue_waiting", (("queue", "inference"),))] == 2
    assert m[("radviewer_queue_waiting", (("queue", "training"),))] == 0
    assert 600 <= m[("radviewer_queue_oldest_waiting_seconds", (("queue", "inference"),))] < 700
    assert m[("radviewer_queue_oldest_waiting_seconds", (("queue", "training"),))] == 0
    beat = m[("radviewer_worker_last_heartbeat_timestamp_seconds", (("hostname", "box-1"), ("queue", "inference")))]
    assert beat == pytest.approx((now - timedelta(seconds=40)).timestamp())
    covid = (("model_version", "4"), ("predicted_class", "covid"))
    assert m[("radviewer_reader_reviews", covid)] == 2  # the uncertain verdict says nothing about the model
    assert m[("radviewer_reader_agreed", covid)] == 1
    assert m[("radviewer_reader_agreement_ratio", covid)] == 0.5
    assert m[("radviewer_reader_agreement_ratio", (("model_version", "4"), ("predicted_class", "lung-normal")))] == 1
    assert m[("radviewer_training_jobs", (("state", "failed"),))] == 2
    assert m[("radviewer_training_jobs", (("state", "running"),))] == 0
    assert m[("radviewer_training_last_failure_timestamp_seconds", ())] == pytest.approx(failed_at.timestamp())
    assert {k[1][0][1] for k in m if k[0] == "radviewer_queue_messages"} == {"default", "inference", "training"}
    assert all(v == 1 for k, v in m.items() if k[0] == "radviewer_metrics_source_up")


def test_drift_without_reports_is_unavailable_not_zero(client):
    """No DriftReport row (or no such model before the drift checks exist): 0, and no p-value."""
    m = scrape(client)
    assert m[("radviewer_drift_available", ())] == 0
    assert not [k for k in m if k[0] in ("radviewer_drift_p_value", "radviewer_drift_statistic")]
    assert m[("radviewer_metrics_source_up", (("source", "drift"),))] == 1


def test_a_source_that_cannot_be_read_is_reported_and_the_rest_still_served(client, monkeypatch):
    def broken():
        raise ConnectionError("broker unreachable")

    monkeypatch.setitem(collectors.SOURCES, "broker", broken)
    m = scrape(client)
    assert m[("radviewer_metrics_source_up", (("source", "broker"),))] == 0
    assert m[("radviewer_metrics_source_up", (("source", "jobs"),))] == 1
    assert not [k for k in m if k[0] == "radviewer_queue_messages"]
    assert ("radviewer_training_jobs", (("state", "queued"),)) in m


def test_database_metrics_are_cached_for_the_configured_time(client, settings):
    settings.METRICS_CACHE_SECONDS = 3600
    key = ("radviewer_training_jobs", (("state", "queued"),))
    assert scrape(client)[key] == 0
    TrainingJob.objects.create(state=TrainingJob.State.QUEUED)
    assert scrape(client)[key] == 0  # cached
    settings.METRICS_CACHE_SECONDS = 0
    assert scrape(client)[key] == 1


def test_supervise_empties_the_multiprocess_folder_and_names_it_to_its_processes(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import supervise
    finally:
        sys.path.pop(0)
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "keep.txt").write_text("not ours")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    supervise.prepare_metrics_dir(folder)
    assert not list(folder.glob("*.db")) and (folder / "keep.txt").exists()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder.resolve())


@pytest.mark.services
@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_broker_queue_depth_counts_the_messages_of_each_queue(broker, tmp_path):
    from radviewer.celery import app
    from tests.support.brokers import OwnRedis, celery_broker

    redis = OwnRedis(tmp_path) if broker == "redis" else None
    if redis:
        redis.start()
    try:
        with celery_broker(redis.url if redis else "filesystem://"):
            with app.connection_for_write() as conn:
                for queue in ("default", "inference", "training"):
                    conn.default_channel.queue_purge(queue)
            for queue in ("inference", "inference", "training"):
                app.send_task("radviewer.ops.tasks.record_heartbeat", kwargs={"queue": queue}, queue=queue)
            try:
                [family] = collectors._broker_queues()
                depth = {s.labels["queue"]: s.value for s in family.samples}
                assert depth == {"default": 0, "inference": 2, "training": 1}
            finally:
                with app.connection_for_write() as conn:
                    for queue in ("inference", "training"):
                        conn.default_channel.queue_purge(queue)
    finally:
        if redis:
            redis.stop()
