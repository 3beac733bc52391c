"""The worklist: what to read next.

Order: escalated studies first (waiting longer than ``WORKLIST_MAX_WAIT_MINUTES``, so no
study starves), then triage priority (urgent-class probability; out-of-scope = 1.0), then
oldest first. Indexed on (status, -triage_priority, received_at); images and predictions are
not joined here (``worklist_row_details`` adds them for the shown page only), so a page costs
a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import BooleanField, Case, Count, F, Max, Q, QuerySet, Value, When
from django.utils import timezone

from clinical.models import Image, Prediction, Review, Study
from clinical.selectors.claims import claimed_by_others, mine_condition

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
    # "Mine": open studies the reader (``reader_id``) claimed or read (issue 14 item 9)
    mine: bool = False
    reader_id: int | None = None


def worklist(*, filters: WorklistFilters) -> QuerySet[Study]:
    qs = Study.objects.all()
    if filters.done:
        qs = qs.filter(status=Study.Status.SIGNED_OFF)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    else:
        qs = qs.filter(status__in=OPEN_STATUSES)
    if filters.mine:
        qs = qs.filter(mine_condition(reader_id=filters.reader_id)) if filters.reader_id else qs.none()
    if filters.modality in (Study.Scope.CXR, Study.Scope.OCT):  # by scope, header or inferred
        qs = qs.filter(scope=filters.modality)
    elif filters.modality:
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
    )
    if filters.done:
        return qs.order_by("-signed_off_at")
    return qs.order_by("-escalated", "-triage_priority", "received_at", "id")


@dataclass(frozen=True)
class WorklistRowDetails:
    image_count: int
    top_probability: float | None  # the AI's probability for the study's top_class
    # The final reading: each image's latest review, as (verdict, label) pairs, distinct,
    # in image order (empty until someone has read it).
    final_readings: tuple[tuple[str, str], ...] = ()


def worklist_row_details(*, study_ids: Iterable[int]) -> dict[int, WorklistRowDetails]:
    """Image count and top-class probability of each shown study, in one query.

    Kept out of ``worklist()``: counting images for every open study before the sort made
    the 10,000-study page twice as slow (46 vs 22 ms median, benchmarks/worklist.py); here
    only the page's rows are touched. Shadow-arm predictions are never shown to readers.
    """
    shown = Q(predictions__status=Prediction.Status.SUCCEEDED, predictions__top_class=F("study__top_class"))
    rows = (
        Image.objects.filter(study_id__in=list(study_ids))
        .values("study_id")
        .annotate(
            n=Count("id", distinct=True),
            p=Max("predictions__confidence", filter=shown & ~Q(predictions__arm=Prediction.Arm.SHADOW)),
        )
        .order_by()
    )
    readings = _final_readings(study_ids=[r["study_id"] for r in rows])
    return {r["study_id"]: WorklistRowDetails(r["n"], r["p"], readings.get(r["study_id"], ())) for r in rows}


def _final_readings(*, study_ids: list[int]) -> dict[int, tuple[tuple[str, str], ...]]:
    """Each study's final reading (the latest review of each image), in one query."""
    latest: dict[int, tuple[int, str, str]] = {}  # image id -> (study id, verdict, label)
    reviews = (Review.objects.filter(image__study_id__in=study_ids)
               .order_by("image_id", "-created_at", "-id")
               .values_list("image_id", "image__study_id", "verdict", "label"))
    for image_id, study_id, verdict, label in reviews:
        latest.setdefault(image_id, (study_id, verdict, label))
    out: dict[int, list[tuple[str, str]]] = {}
    for _image_id, (study_id, verdict, label) in sorted(latest.items()):
        readings = out.setdefault(study_id, [])
        if (verdict, label) not in readings:
            readings.append((verdict, label))
    return {study_id: tuple(r) for study_id, r in out.items()}


def worklist_next_uid(*, after_uid: str, reader_id: int | None = None) -> str | None:
    """The study after ``after_uid`` in the default worklist order (the ``n`` shortcut).

    A study no longer on the list (signed off) leads to the top of the list. Studies another
    reader than ``reader_id`` is reading (a live claim) are skipped.
    """
    qs = worklist(filters=WorklistFilters())
    qs = qs.filter(~claimed_by_others(reader_id=reader_id) | Q(uid=after_uid))
    uids = qs.values_list("uid", flat=True)
    found = False
    first = None
    for uid in uids.iterator(chunk_size=500):
        if first is None and uid != after_uid:
            first = uid
        if found:
            return uid
        found = uid == after_uid
    return None if found else first
