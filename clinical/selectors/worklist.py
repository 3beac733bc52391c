"""The worklist: what to read next.

Order: escalated studies first (waiting longer than ``WORKLIST_MAX_WAIT_MINUTES``, so no
study starves), then triage priority (urgent-class probability; out-of-scope = 1.0), then
oldest first. Indexed on (status, -triage_priority, received_at); images and predictions are
not joined, so the page costs a fixed number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import BooleanField, Case, Count, QuerySet, Value, When
from django.utils import timezone

from clinical.models import Study

OPEN_STATUSES = (
    Study.Status.PROCESSING,
    Study.Status.AWAITING_REVIEW,
    Study.Status.REVIEWED,
    Study.Status.FAILED,
)


@dataclass(frozen=True)
class WorklistFilters:
    status: str = ""
    modality: str = ""
    predicted_class: str = ""
    out_of_scope: bool | None = None
    since: date | None = None
    until: date | None = None
    done: bool = False  # the signed-off list instead of open studies


def worklist(*, filters: WorklistFilters) -> QuerySet[Study]:
    qs = Study.objects.all()
    if filters.done:
        qs = qs.filter(status=Study.Status.SIGNED_OFF)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    else:
        qs = qs.filter(status__in=OPEN_STATUSES)
    if filters.modality:
        qs = qs.filter(modality=filters.modality)
    if filters.predicted_class:
        qs = qs.filter(top_class=filters.predicted_class)
    if filters.out_of_scope is not None:
        qs = qs.filter(out_of_scope=filters.out_of_scope)
    if filters.since:
        qs = qs.filter(received_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(received_at__date__lte=filters.until)
    cutoff = timezone.now() - timedelta(minutes=settings.WORKLIST_MAX_WAIT_MINUTES)
    qs = qs.annotate(
        escalated=Case(
            When(received_at__lt=cutoff, then=Value(True)), default=Value(False), output_field=BooleanField()
        ),
        image_count=Count("images"),
    )
    if filters.done:
        return qs.order_by("-signed_off_at")
    return qs.order_by("-escalated", "-triage_priority", "received_at", "id")
