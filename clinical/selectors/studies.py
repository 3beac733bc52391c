"""Study reads for the integration surface: a client's studies (REST polling, QIDO-RS), the
studies that already hold an incoming file, and the idempotency replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from clinical.ingest import IngestResult
from clinical.models import Image, OriginalIdentifiers, Study
from clinical.selectors.phi import original_identifiers_read
from clinical.selectors.results import SOURCE_PURPOSE
from radviewer.lib.phi_crypto import phi_lookup_hmac

# The statuses in which a study has an AI result a PACS can fetch.
RESULT_STATUSES = (Study.Status.AWAITING_REVIEW, Study.Status.REVIEWED, Study.Status.SIGNED_OFF)


def study_replay(*, client: Any, idempotency_key: str) -> Study | None:
    """The study an earlier request of ``client`` with the same Idempotency-Key created."""
    if not idempotency_key:
        return None
    return Study.objects.filter(api_client_id=client.pk, idempotency_key=idempotency_key).first()


def client_studies(
    *,
    client: Any,
    since: datetime | None = None,
    status: str | None = None,
    accession_number: str | None = None,
    study_instance_uid: str | None = None,
) -> QuerySet[Study]:
    """``client``'s studies, filtered; the caller paginates (received_at, id)."""
    qs = Study.objects.filter(api_client_id=client.pk)
    if since is not None:
        qs = qs.filter(received_at__gte=since)
    if status is not None:
        qs = qs.filter(status=status)
    if accession_number is not None:
        qs = qs.filter(accession_number=accession_number)
    if study_instance_uid is not None:
        qs = qs.filter(images__original_ids__study_uid_hmac=phi_lookup_hmac(study_instance_uid)).distinct()
    return qs


@dataclass(frozen=True)
class ResultStudy:
    """A DICOM study with a result, named by the sender's own identifiers (QIDO-RS)."""

    study: Study
    source_ids: OriginalIdentifiers
    image_count: int


def client_dicom_results(
    *,
    client: Any,
    study_instance_uid: str = "",
    accession_number: str = "",
    offset: int = 0,
    limit: int = 100,
    request: Any = None,
) -> list[ResultStudy]:
    """``client``'s DICOM studies that have a result, oldest first, with the original
    identifiers of each (an audited read of the protected mapping)."""
    qs = (Study.objects.filter(api_client_id=client.pk, status__in=RESULT_STATUSES,
                               images__format=Image.Format.DICOM)
          .distinct().order_by("received_at", "id"))
    if study_instance_uid:
        qs = qs.filter(images__original_ids__study_uid_hmac=phi_lookup_hmac(study_instance_uid))
    if accession_number:
        qs = qs.filter(images__original_ids__accession_hmac=phi_lookup_hmac(accession_number))
    out = []
    for study in qs[offset:offset + limit]:
        image = study.images.filter(format=Image.Format.DICOM).order_by("id").first()
        ids = original_identifiers_read(image=image, api_client=client, purpose=SOURCE_PURPOSE, request=request)
        if ids is not None:
            out.append(ResultStudy(study=study, source_ids=ids, image_count=study.images.count()))
    return out


def studies_holding(result: IngestResult) -> QuerySet[Study]:
    """Studies that already hold this file, this SOP instance or this (de-identified) Study
    Instance UID: one query, used for ownership checks and to find a submission's study."""
    match = Q(images__sha256=result.sha256)
    if result.dicom is not None:
        match |= Q(images__original_ids__sop_uid_hmac=phi_lookup_hmac(result.dicom.original_uids["sop"]))
        match |= Q(uid=result.dicom.deid_uids["study"])
    return Study.objects.filter(match).order_by()


def study_owners(result: IngestResult) -> set[int | None]:
    """API clients (None: the upload page) owning a study in ``studies_holding(result)``."""
    return set(studies_holding(result).values_list("api_client_id", flat=True).distinct())


def existing_study_ids(result: IngestResult) -> set[int]:
    return set(studies_holding(result).values_list("pk", flat=True).distinct())


def study_image(*, study: Study, image_id: int | None = None) -> Image | None:
    """Image ``image_id`` of ``study``, or its first image when none is named."""
    images = study.images.order_by("id")
    return images.filter(pk=image_id).first() if image_id is not None else images.first()


def study_sole_image(*, study: Study) -> Image | None:
    """The study's image when it has exactly one, else None."""
    images = list(study.images.order_by("id")[:2])
    return images[0] if len(images) == 1 else None
