"""The Celery queues (DESIGN.md section 3), declared alike by every process on a broker.

Kept out of ``radviewer.celery`` so the settings can name them without importing the app.
"""

from __future__ import annotations

from kombu import Queue

QUEUES = ("default", "inference", "training")


def make_queue(name: str, *, quorum: bool) -> Queue:
    """A durable queue; a quorum queue on RabbitMQ (settings.CELERY_QUORUM_QUEUES). Every
    process using a broker must declare its queues alike: RabbitMQ refuses a classic
    declaration of a quorum queue's name."""
    if quorum:
        return Queue(name, routing_key=name, durable=True, queue_arguments={"x-queue-type": "quorum"})
    return Queue(name, routing_key=name)
