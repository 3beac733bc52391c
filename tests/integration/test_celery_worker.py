"""A real worker process consumes a task from a real broker and writes to the real database.

Embedded profile: kombu filesystem broker + SQLite (or whatever DATABASE_URL says).
Services profile: Redis broker + the configured database (PostgreSQL in CI's second pass).
"""

from __future__ import annotations

import os

import pytest
from django.db import connection, transaction

from radviewer.lib.tasks import enqueue_on_commit
from radviewer.ops.models import WorkerHeartbeat
from radviewer.ops.tasks import record_heartbeat
from tests.support.services import IN_CI, require_rabbitmq, require_redis
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def _send_on_commit(broker_url: str, queue: str) -> None:
    from django.conf import settings
    from kombu import Connection

    from radviewer.lib.queues import make_queue

    options = settings.TEST_FILESYSTEM_TRANSPORT_OPTIONS if broker_url.startswith("filesystem") else {}
    # Declared as the worker on that broker declares it (a quorum queue on RabbitMQ).
    target = make_queue(queue, quorum=broker_url.startswith("amqp"))

    def send():
        with Connection(broker_url, transport_options=options) as conn:
            record_heartbeat.apply_async(kwargs={"queue": queue}, queue=target, connection=conn)

    with transaction.atomic():
        transaction.on_commit(send)


def test_embedded_broker_worker_writes_database():
    with WorkerProcess(queues="inference,default", broker_url="filesystem://") as worker:
        _send_on_commit("filesystem://", "inference")
        hb = wait_until(lambda: WorkerHeartbeat.objects.filter(queue="inference").first(),
                        timeout=30, what="heartbeat row")
        assert hb.beats == 1
        assert "record_heartbeat" in worker.log()


def test_redis_broker_worker_writes_database():
    redis_url = require_redis()
    if IN_CI and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert connection.vendor == "postgresql"
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    with WorkerProcess(queues="training", broker_url=redis_url):
        _send_on_commit(redis_url, "training")
        _send_on_commit(redis_url, "training")
        hb = wait_until(
            lambda: WorkerHeartbeat.objects.filter(queue="training", beats=2).first(),
            timeout=30, what="two heartbeats",
        )
        assert hb.hostname


def test_rabbitmq_broker_worker_writes_database_through_quorum_queues():
    """RabbitMQ as the scale-out broker: a real worker consumes from a quorum queue."""
    amqp_url = require_rabbitmq()
    from amqp.exceptions import PreconditionFailed
    from kombu import Connection, Queue

    with WorkerProcess(queues="training", broker_url=amqp_url) as worker:
        # The worker declared `training` as a quorum queue: the same declaration is accepted,
        # a classic one of the same name is refused.
        with Connection(amqp_url) as conn:
            Queue("training", routing_key="training", durable=True,
                  queue_arguments={"x-queue-type": "quorum"}, channel=conn.channel()).declare()
        with Connection(amqp_url) as conn, pytest.raises(PreconditionFailed, match="x-queue-type"):
            Queue("training", routing_key="training", channel=conn.channel()).declare()
        _send_on_commit(amqp_url, "training")
        _send_on_commit(amqp_url, "training")
        hb = wait_until(lambda: WorkerHeartbeat.objects.filter(queue="training", beats=2).first(),
                        timeout=30, what="two heartbeats over RabbitMQ")
        assert hb.hostname and "amqp://" in worker.log()


def test_enqueue_on_commit_sends_after_commit_and_never_after_rollback(monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(record_heartbeat, "apply_async", lambda **kw: sent.append(kw))
    try:
        with transaction.atomic():
            enqueue_on_commit(record_heartbeat, queue="default")
            raise RuntimeError("rollback")
    except RuntimeError:
        pass
    assert sent == []
    with transaction.atomic():
        enqueue_on_commit("radviewer.ops.tasks.record_heartbeat", queue="default")  # by name, as services do
        assert sent == []  # not before the commit
    assert sent == [{"kwargs": {"queue": "default"}}]
