"""The worklist: what to read next.

Order: escalated studies first (waiting longer than ``WORKLIST_MAX_WAIT_MINUTES``, so no
study starves), then triage priority (urgent-class probability; out-of-scope = 1.0), then
oldest first. Indexed on (status, -triage_priority, received_at); images and predictions are
not joined here (``worklist_row_details`` adds them for the shown page only), so a page costs
a fixed number of queries.

Any column can order the list instead (``SORTS``; ties keep the triage order), and ``q``
finds studies by pseudonym prefix or accession number. ``worklist_band_counts`` (the counts
at the top of the worklist and on the home page) and ``worklist_position`` ("case n of m" in
the viewer) are one aggregate query each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    Count,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from clinical.models import Image, OriginalIdentifiers, Prediction, Review, Study
from clinical.selectors.claims import claimed_by_others, mine_condition
from radviewer.lib.phi_crypto import phi_lookup_hmac

# A study whose triage priority reaches this is in the "urgent" band (badge and counts).
URGENT_BAND_THRESHOLD = 0.5

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
    sort: str = ""  # a key of SORTS, "-" in front for descending; "" = triage order
    q: str = ""  # pseudonym (prefix) or accession number (exact or prefix)


# Column sort keys -> the fields they order by (ascending). Ties fall back to triage order.
# "ai" orders by the denormalised top class, which stays blank for a blinded read until the
# AI is revealed, so a sort never tells where a hidden result would have put a study.
SORTS: dict[str, tuple[str, ...]] = {
    "priority": ("escalated", "triage_priority"),
    "received": ("received_at",),
    "signed_off": ("signed_off_at",),
    "patient": ("patient_key",),
    "age": ("age_band",),
    "sex": ("sex",),
    "modality": ("modality",),
    "view": ("body_part", "view_position"),
    "description": ("description",),
    "source": ("source", "api_client__name", "submitted_by__username"),
    "ai": ("top_class",),
    "images": ("n_images",),
    "reading": ("final_label",),
    "status": ("status",),
    "study": ("uid",),
}
DEFAULT_ORDER = ("-escalated", "-triage_priority", "received_at", "id")
DONE_ORDER = ("-signed_off_at", "id")
_PSEUDONYM = re.compile(r"(?:pt-)?([0-9a-f]{4,20})")
PSEUDONYM_SHORT = 11  # "pt-" and 8 hex digits: what the worklist shows


def sort_key(value: str) -> str:
    """``value`` if it names a sort (``col`` or ``-col``), else "" (triage order)."""
    return value if value.removeprefix("-") in SORTS else ""


def _search(qs: QuerySet[Study], q: str) -> QuerySet[Study]:
    """Pseudonym prefix (``pt-1a2b3c4d`` or ``1a2b3c4d``, 4 hex digits at least), or accession
    number: the one sent with a REST upload (exact or prefix), or the sender's DICOM accession
    (exact; kept only as a keyed hash beside the protected mapping, never shown)."""
    q = q.strip()
    if not q:
        return qs
    match = Q(accession_number__startswith=q)
    pseudonym = _PSEUDONYM.fullmatch(q.lower())
    if pseudonym:
        match |= Q(patient_key__startswith=f"pt-{pseudonym.group(1)}")
    by_dicom_accession = OriginalIdentifiers.objects.filter(accession_hmac=phi_lookup_hmac(q)).values("image__study_id")
    return qs.filter(match | Q(pk__in=by_dicom_accession))


def _escalated(cutoff: datetime) -> Case:
    return Case(When(received_at__lt=cutoff, then=Value(True)), default=Value(False), output_field=BooleanField())


def worklist(*, filters: WorklistFilters) -> QuerySet[Study]:
    qs = Study.objects.select_related("api_client", "submitted_by")
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
    qs = _search(qs, filters.q)
    cutoff = timezone.now() - timedelta(minutes=settings.WORKLIST_MAX_WAIT_MINUTES)
    qs = qs.annotate(escalated=_escalated(cutoff))
    base = DONE_ORDER if filters.done else DEFAULT_ORDER
    sort = sort_key(filters.sort)
    if not sort:
        return qs.order_by(*base)
    fields = SORTS[sort.removeprefix("-")]
    if "n_images" in fields:  # only when asked: a count per open study is not free
        qs = qs.annotate(n_images=Coalesce(Subquery(
            Image.objects.filter(study_id=OuterRef("pk")).order_by().values("study_id")
            .annotate(n=Count("id")).values("n")[:1], output_field=IntegerField()), 0))
    if "final_label" in fields:  # the latest review's label (the Done tab's final reading)
        qs = qs.annotate(final_label=Subquery(
            Review.objects.filter(image__study_id=OuterRef("pk")).order_by("-created_at", "-id").values("label")[:1]))
    prefix = "-" if sort.startswith("-") else ""
    return qs.order_by(*(f"{prefix}{f}" for f in fields), *base)


@dataclass(frozen=True)
class BandCounts:
    escalated: int
    urgent: int
    routine: int
    out_of_scope: int
    total: int  # every open study, those in no band (blinded reads, triage pending) included


def worklist_band_counts() -> BandCounts:
    """Open studies per priority band, in one aggregate query, with the precedence of the
    worklist's badge (``priority_band``): escalated, then blinded (not counted: its AI is
    hidden), out of scope, pending (not counted), urgent or routine."""
    cutoff = timezone.now() - timedelta(minutes=settings.WORKLIST_MAX_WAIT_MINUTES)
    escalated = Q(received_at__lt=cutoff)
    blinded = Q(blinded_read=True, ai_revealed_at__isnull=True)
    pending = Q(status__in=(Study.Status.PROCESSING, Study.Status.FAILED), top_class="")
    shown = ~escalated & ~blinded
    out_of_scope = shown & Q(out_of_scope=True)
    triaged = shown & Q(out_of_scope=False) & ~pending
    row = Study.objects.filter(status__in=OPEN_STATUSES).aggregate(
        n_escalated=Count("id", filter=escalated),
        n_out_of_scope=Count("id", filter=out_of_scope),
        n_urgent=Count("id", filter=triaged & Q(triage_priority__gte=URGENT_BAND_THRESHOLD)),
        n_routine=Count("id", filter=triaged & Q(triage_priority__lt=URGENT_BAND_THRESHOLD)),
        n_total=Count("id"),
    )
    return BandCounts(**{key.removeprefix("n_"): value for key, value in row.items()})


@dataclass(frozen=True)
class WorklistPosition:
    number: int  # 1-based
    total: int


def worklist_position(*, study: Study) -> WorklistPosition | None:
    """Where ``study`` stands in the default worklist order of open studies ("case n of m"),
    in one aggregate query; None when it is not on the list (signed off)."""
    if study.status not in OPEN_STATUSES:
        return None
    cutoff = timezone.now() - timedelta(minutes=settings.WORKLIST_MAX_WAIT_MINUTES)
    p, r = study.triage_priority, study.received_at
    ahead = (Q(triage_priority__gt=p) | Q(triage_priority=p, received_at__lt=r)
             | Q(triage_priority=p, received_at=r, id__lt=study.pk))
    escalated = Q(received_at__lt=cutoff)
    before = escalated & ahead if r < cutoff else escalated | (~escalated & ahead)
    row: dict[str, Any] = Study.objects.filter(status__in=OPEN_STATUSES).aggregate(
        before=Count("id", filter=before), total=Count("id"))
    return WorklistPosition(number=row["before"] + 1, total=row["total"])


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
