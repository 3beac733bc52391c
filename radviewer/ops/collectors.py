"""Metrics read from the database and the broker when Prometheus scrapes ``/metrics``.

Served by the web process only (``radviewer.ops.views.metrics``), next to the event metrics
of every process (``radviewer.lib.metrics``). Each family is computed at most once per
``RADVIEWER_METRICS_CACHE_SECONDS`` per process, so a scrape every few seconds (or several
Prometheus servers) costs a handful of indexed queries. A source that cannot be read (the
database or the broker is down) drops its families and sets
``radviewer_metrics_source_up{source=...}`` to 0; the scrape itself never fails.

Families (docs/operations.md has the full list with their meaning):

- queues: ``radviewer_queue_messages{queue}`` (messages in the broker: Redis LLEN, the
  filesystem broker's files, AMQP's message count) and, counted from the rows on every broker,
  ``radviewer_queue_waiting{queue}`` and ``radviewer_queue_oldest_waiting_seconds{queue}``
  (inference: predictions queued; training: training jobs queued);
- ``radviewer_worker_last_heartbeat_timestamp_seconds{queue,hostname}``;
- reader agreement per model version and predicted class (mlcore ``ReviewOutcome``);
- drift statistic and p-value per detector and model version (the latest ``DriftReport``);
  ``radviewer_drift_available`` is 0 while there is none, so "no drift data" is never 0;
- training jobs (and pipeline runs, once they exist) by state, the last failure's time;
- degradation from reader feedback: per model version, the agreement CUSUM statistic
  ``radviewer_agreement_cusum``, its alarm threshold and ``radviewer_agreement_cusum_alarm``
  (1 while the statistic is at or above the threshold: a sustained agreement drop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clinical.selectors.monitoring import inference_backlog
from mlcore.selectors import agreement_by_version
from mlcore.selectors.degradation import agreement_cusum
from mlcore.selectors.monitoring import (
    latest_drift_readings,
    pipeline_run_states,
    training_backlog,
    training_job_states,
    training_last_failure_at,
)
from radviewer.celery import QUEUES, app
from radviewer.ops.models import WorkerHeartbeat

log = logging.getLogger(__name__)


def _queue_backlog() -> list[Metric]:
    now = time.time()
    waiting = GaugeMetricFamily("radviewer_queue_waiting",
                                "Work waiting for a worker, counted from the rows (inference: predictions queued; "
                                "training: training jobs queued)", labels=["queue"])
    oldest = GaugeMetricFamily("radviewer_queue_oldest_waiting_seconds",
                               "Age of the longest-waiting work item (0 when none waits)", labels=["queue"])
    inference = inference_backlog()
    training_n, training_oldest = training_backlog()
    backlogs = (("inference", inference.waiting, inference.oldest), ("training", training_n, training_oldest))
    for queue, n, first in backlogs:
        waiting.add_metric([queue], n)
        oldest.add_metric([queue], max(now - first.timestamp(), 0.0) if first is not None and n else 0.0)
    return [waiting, oldest]


def _broker_queues() -> list[Metric]:
    from kombu.exceptions import ChannelError

    family = GaugeMetricFamily("radviewer_queue_messages",
                               "Messages in the broker per Celery queue (ready, not yet taken by a worker)",
                               labels=["queue"])
    with app.connection_for_write() as conn:  # the broker the services send to
        conn.ensure_connection(max_retries=1, timeout=2)
        for queue in QUEUES:
            channel = conn.channel()
            try:
                size = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:  # a queue nobody has sent to yet (Redis: no key, AMQP: not declared)
                size = 0
            finally:
                channel.close()
            family.add_metric([queue], size)
    return [family]


def _heartbeats() -> list[Metric]:
    family = GaugeMetricFamily("radviewer_worker_last_heartbeat_timestamp_seconds",
                               "Unix time a worker last consumed the heartbeat task of a queue (beat sends one per "
                               "queue every RADVIEWER_WORKER_HEARTBEAT_SECONDS)", labels=["queue", "hostname"])
    for hb in WorkerHeartbeat.objects.order_by("queue"):
        family.add_metric([hb.queue, hb.hostname], hb.seen_at.timestamp())
    return [family]


def _agreement() -> list[Metric]:
    labels = ["model_version", "predicted_class"]
    ratio = GaugeMetricFamily("radviewer_reader_agreement_ratio",
                              "Share of decisive reader verdicts (agree or corrected) that agreed with the model's "
                              "top class", labels=labels)
    reviews = GaugeMetricFamily("radviewer_reader_reviews",
                                "Decisive reader verdicts (agree or corrected) on the model's predictions",
                                labels=labels)
    agreed = GaugeMetricFamily("radviewer_reader_agreed", "Reader verdicts that agreed with the model", labels=labels)
    for agg in agreement_by_version(model_name=settings.MLFLOW_REGISTERED_MODEL):
        for cls, cell in agg.per_class.items():
            key = [agg.model_version, cls]
            ratio.add_metric(key, cell["rate"])
            reviews.add_metric(key, cell["reviews"])
            agreed.add_metric(key, cell["agreed"])
    return [ratio, reviews, agreed]


def _drift() -> list[Metric]:
    available = GaugeMetricFamily("radviewer_drift_available",
                                  "1 when drift reports exist; 0 means drift is unavailable (not: no drift)")
    readings = latest_drift_readings()
    available.add_metric([], 1.0 if readings else 0.0)
    if not readings:
        return [available]
    labels = ["detector", "model_version"]
    statistic = GaugeMetricFamily("radviewer_drift_statistic",
                                  "Test statistic of the latest drift check, per detector and model version",
                                  labels=labels)
    p_value = GaugeMetricFamily("radviewer_drift_p_value",
                                "p-value of the latest drift check, per detector and model version", labels=labels)
    checked = GaugeMetricFamily("radviewer_drift_last_check_timestamp_seconds",
                                "Unix time of the latest drift check, per detector and model version", labels=labels)
    for r in readings:
        key = [r.detector, r.model_version]
        if r.statistic is not None:
            statistic.add_metric(key, float(r.statistic))
        if r.p_value is not None:
            p_value.add_metric(key, float(r.p_value))
        checked.add_metric(key, r.created_at.timestamp())
    return [available, statistic, p_value, checked]


def _jobs() -> list[Metric]:
    jobs = GaugeMetricFamily("radviewer_training_jobs", "Training jobs by state", labels=["state"])
    for state, n in training_job_states().items():
        jobs.add_metric([state], n)
    out: list[Metric] = [jobs]
    last_failure = training_last_failure_at()
    if last_failure is not None:
        failed = GaugeMetricFamily("radviewer_training_last_failure_timestamp_seconds",
                                   "Unix time the most recent training job failed")
        failed.add_metric([], last_failure.timestamp())
        out.append(failed)
    runs = pipeline_run_states()
    if runs is not None:
        family = GaugeMetricFamily("radviewer_pipeline_runs", "Continuous-training pipeline runs by state",
                                   labels=["state"])
        for state, n in runs.items():
            family.add_metric([state], n)
        out.append(family)
    return out


def _degradation() -> list[Metric]:
    labels = ["model_version"]
    value = GaugeMetricFamily("radviewer_agreement_cusum",
                              "Bernoulli CUSUM of reader disagreement per model version (0 while in control)",
                              labels=labels)
    threshold = GaugeMetricFamily("radviewer_agreement_cusum_threshold",
                                  "Alarm threshold h of the agreement CUSUM (in-control ARL: "
                                  "RADVIEWER_AGREEMENT_CUSUM_ARL0 reads)", labels=labels)
    alarm = GaugeMetricFamily("radviewer_agreement_cusum_alarm",
                              "1 while the agreement CUSUM is at or above its threshold (sustained drop)",
                              labels=labels)
    charts = [c for c in agreement_cusum(model_name=settings.MLFLOW_REGISTERED_MODEL, simulate_arl=False)
              if c.design is not None]  # a version still collecting its baseline: no series, not zero
    if not charts:
        return []
    for chart in charts:
        key = [chart.model_version]
        value.add_metric(key, chart.current)
        threshold.add_metric(key, chart.design.h)
        alarm.add_metric(key, 1.0 if chart.alarm else 0.0)
    return [value, threshold, alarm]


SOURCES: dict[str, Callable[[], list[Metric]]] = {
    "queue_backlog": _queue_backlog,
    "broker": _broker_queues,
    "heartbeats": _heartbeats,
    "agreement": _agreement,
    "drift": _drift,
    "degradation": _degradation,
    "jobs": _jobs,
}


class DatabaseCollector(Collector):
    """Collects every source above, each cached for ``METRICS_CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Metric], bool]] = {}

    def _read(self, name: str, fn: Callable[[], list[Metric]]) -> tuple[list[Metric], bool]:
        ttl = float(settings.METRICS_CACHE_SECONDS)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and now - hit[0] < ttl:
                return hit[1], hit[2]
        try:
            families, ok = fn(), True
        except Exception as exc:  # a scrape reports what it can; the source is marked down
            log.warning("metrics source %s could not be read: %s: %s", name, type(exc).__name__, exc)
            families, ok = [], False
        with self._lock:
            self._cache[name] = (now, families, ok)
        return families, ok

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("radviewer_metrics_source_up",
                               "1 when the source of database/broker metrics could be read at the last scrape",
                               labels=["source"])
        for name, fn in SOURCES.items():
            families, ok = self._read(name, fn)
            up.add_metric([name], 1.0 if ok else 0.0)
            yield from families
        yield up

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


database_collector = DatabaseCollector()
