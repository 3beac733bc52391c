"""The one Celery app. Queues: ``default``, ``inference``, ``training`` (DESIGN.md section 3).

JSON only; tasks are declared with :func:`radviewer.lib.tasks.house_task`, which sets the
reliability options, and enqueued from services with ``transaction.on_commit``.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_ready
from django.conf import settings

from radviewer.lib import kombu_fs
from radviewer.lib.queues import QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radviewer.settings.base")
kombu_fs.install()  # atomic writes for the embedded filesystem broker

app = Celery("radviewer")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.update(
    task_default_queue="default",
    task_default_routing_key="default",
    task_routes=("radviewer.lib.tasks.route_task",),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)
app.autodiscover_tasks()


# Routing reads the registry mirror only; the services that move aliases refresh it, and
# this catches moves made in MLflow directly.
REGISTRY_REFRESH_SECONDS = 300.0
# A killed training worker's job is failed within this plus RADVIEWER_TRAINING_STALE_SECONDS.
TRAINING_REAP_SECONDS = 60.0
ROLLOUT_GUARD_SECONDS = 60.0


def beat_schedule(heartbeat_seconds: int) -> dict:
    schedule: dict = {
        f"worker-heartbeat-{queue}": {
            "task": "radviewer.ops.tasks.record_heartbeat",
            "schedule": float(heartbeat_seconds),
            "kwargs": {"queue": queue},
            "options": {"queue": queue, "expires": float(heartbeat_seconds)},
        }
        for queue in QUEUES
    }
    schedule["registry-refresh"] = {
        "task": "mlcore.registry_refresh",
        "schedule": REGISTRY_REFRESH_SECONDS,
        "options": {"queue": "default", "expires": REGISTRY_REFRESH_SECONDS},
    }
    schedule["stale-work-reap"] = {
        "task": "mlcore.stale_work_reap",
        "schedule": TRAINING_REAP_SECONDS,
        "options": {"queue": "default", "expires": TRAINING_REAP_SECONDS},
    }
    # The canary guard: a worse canary stops receiving studies within a minute.
    schedule["rollout-guard"] = {
        "task": "clinical.rollout_guard",
        "schedule": ROLLOUT_GUARD_SECONDS,
        "options": {"queue": "default", "expires": ROLLOUT_GUARD_SECONDS},
    }
    schedule["pipeline-check"] = {
        "task": "mlcore.pipeline_check",
        "schedule": float(settings.PIPELINE_CHECK_SECONDS),
        "options": {"queue": "default", "expires": float(settings.PIPELINE_CHECK_SECONDS)},
    }
    schedule["predictions-recover"] = {
        "task": "clinical.predictions_recover",
        "schedule": float(settings.PREDICTION_SWEEP_SECONDS),
        "options": {"queue": "default", "expires": float(settings.PREDICTION_SWEEP_SECONDS)},
    }
    schedule["drift-check"] = {
        "task": "mlcore.drift_check",
        "schedule": float(settings.DRIFT_CHECK_SECONDS),
        "options": {"queue": "default", "expires": float(settings.DRIFT_CHECK_SECONDS)},
    }
    return schedule


@app.on_after_finalize.connect
def _setup_periodic(sender: Celery, **_: object) -> None:
    sender.conf.beat_schedule = beat_schedule(settings.CELERY_WORKER_HEARTBEAT_SECONDS)


@worker_ready.connect
def _serve_worker_metrics(**_: object) -> None:
    """A worker on a host of its own serves its metrics (its pool children's too, through the
    multiprocess folder) on ``RADVIEWER_WORKER_METRICS_PORT``; 0 = off (docs/operations.md)."""
    port = settings.WORKER_METRICS_PORT
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    try:
        start_http_server(port, addr=settings.WORKER_METRICS_ADDR, registry=registry)
    except OSError as exc:  # the worker still works; its metrics are missing and say why
        logging.getLogger(__name__).error("worker metrics: cannot listen on %s:%s: %s",
                                          settings.WORKER_METRICS_ADDR, port, exc)
