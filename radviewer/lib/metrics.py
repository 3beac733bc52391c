"""Event metrics that web processes and Celery workers record as things happen.

Counters and histograms only, so they work in prometheus_client's multiprocess mode: with
``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` does; docs/operations.md), every process
(gunicorn workers, Celery workers and their pool children) writes its samples to files in
that folder and ``/metrics`` on the web process sums them. Values read from the database
(queues, heartbeats, reader agreement, drift, training jobs) are not here: they are computed
at scrape time by ``radviewer.ops.collectors``.

Every model series carries ``model_version`` (and ``arm``: production, canary or shadow).
Callers record through the small functions below, never through the metric objects, so the
label sets stay the same everywhere. Recording never raises: a metric must not fail a task.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

# Seconds: CPU inference of one image is ~0.05-2 s; a cold model load can take longer.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0)
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

INFERENCE_LATENCY = Histogram(
    "radviewer_inference_latency_seconds",
    "Model inference time of one image (preprocessing, forward pass, heat map), by model version and arm",
    ["model_version", "arm"], buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "radviewer_predictions",
    "Predictions stored, by model version, arm and predicted (top) class",
    ["model_version", "arm", "predicted_class"],
)
OUT_OF_SCOPE = Counter(
    "radviewer_predictions_out_of_scope",
    "Predictions flagged out of scope (OOD score or a header outside chest X-ray/OCT), by model version and arm",
    ["model_version", "arm"],
)
CONFIDENCE = Histogram(
    "radviewer_prediction_confidence",
    "Top-class probability of stored predictions, by model version and arm",
    ["model_version", "arm"], buckets=CONFIDENCE_BUCKETS,
)
PREDICTION_FAILURES = Counter(
    "radviewer_prediction_failures",
    "Predictions that ended failed (inference error, or the worker died on every attempt), by model version and arm",
    ["model_version", "arm"],
)
INGEST_REFUSALS = Counter(
    "radviewer_ingest_refusals",
    "Files refused at ingest (upload page, REST API, STOW-RS), by reason code (clinical.ingest.errors)",
    ["reason"],
)


def _label(value: object, default: str) -> str:
    text = str(value or "").strip()
    return text[:64] if text else default


def prediction_succeeded(*, model_version: str, arm: str, predicted_class: str, confidence: float | None,
                         out_of_scope: bool, latency_ms: float | None) -> None:
    """One prediction stored as succeeded (call once per prediction, after its commit)."""
    try:
        version, arm_label = _label(model_version, "unknown"), _label(arm, "production")
        PREDICTIONS.labels(version, arm_label, _label(predicted_class, "none")).inc()
        # The out-of-scope and failure series of a version exist (at 0) from its first
        # prediction, so their shares read 0 rather than "no data".
        OUT_OF_SCOPE.labels(version, arm_label).inc(1 if out_of_scope else 0)
        PREDICTION_FAILURES.labels(version, arm_label)
        if confidence is not None:
            CONFIDENCE.labels(version, arm_label).observe(float(confidence))
        if latency_ms is not None:
            INFERENCE_LATENCY.labels(version, arm_label).observe(max(float(latency_ms), 0.0) / 1000.0)
    except Exception:  # a metric never fails the work it describes
        log.exception("could not record prediction metrics")


def prediction_failed(*, model_version: str, arm: str) -> None:
    try:
        PREDICTION_FAILURES.labels(_label(model_version, "none"), _label(arm, "production")).inc()
    except Exception:
        log.exception("could not record a prediction failure metric")


def ingest_refused(*, reason: str) -> None:
    try:
        INGEST_REFUSALS.labels(_label(reason, "unknown")).inc()
    except Exception:
        log.exception("could not record an ingest refusal metric")
