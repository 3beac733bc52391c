from __future__ import annotations

import socket

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from radviewer.lib.tasks import house_task
from radviewer.ops.models import WorkerHeartbeat


@house_task(queue="default", soft_time_limit=20, name="radviewer.ops.tasks.record_heartbeat")
def record_heartbeat(*, queue: str) -> None:
    """Record that a worker consumed from ``queue``. Sent to each queue by beat."""
    with transaction.atomic():
        hb, created = WorkerHeartbeat.objects.select_for_update().get_or_create(
            queue=queue,
            defaults={"hostname": socket.gethostname(), "seen_at": timezone.now(), "beats": 1},
        )
        if not created:
            WorkerHeartbeat.objects.filter(pk=hb.pk).update(
                hostname=socket.gethostname(), seen_at=timezone.now(), beats=F("beats") + 1
            )
