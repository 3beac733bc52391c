"""REST submission: several files, one study, all or nothing.

1. Every file goes through the pure ingest core first (``ingest_prepare``); if any is
   refused, the response lists each file's reason and nothing is stored.
2. The files must make one study: DICOM parts must share one Study Instance UID (different
   studies -> 400 ``mixed_studies``; send one request per study), and files already stored
   (same bytes, or same SOP Instance UID) must all belong to the same study - which then
   receives the new files. A study of another client (or of the upload page) -> 409.
3. Then everything is stored in one transaction: DICOM parts first, so the study takes the
   DICOM study's (de-identified) UID and later STOW-RS instances of it join it; PNG/JPEG join
   that study. If a later file fails to store, the earlier rows roll back and their files
   are deleted; queued predictions are sent only on commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from clinical.ingest import IngestError, IngestResult
from clinical.models import Study
from clinical.selectors.studies import existing_study_ids, study_replay
from clinical.services.ingest import ImageIngestOutcome, image_ingest, ingest_prepare
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

# When files fail for different reasons, the response status is the first of these present.
_STATUS_PRECEDENCE = (413, 415, 422, 400)


class SubmissionRefused(Exception):
    """The request cannot be stored as one study; the API answers ``status_code`` with
    ``code``, ``detail`` and the ``extra`` fields (e.g. each refused file's reason)."""

    def __init__(self, *, status_code: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status_code, self.code, self.detail, self.extra = status_code, code, detail, extra


@dataclass(frozen=True)
class UploadedFile:
    name: str
    data: bytes


@dataclass
class Submission:
    study: Study
    replayed: bool = False  # an Idempotency-Key seen before: nothing new was stored
    outcomes: list[tuple[str, ImageIngestOutcome]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _prepare_all(files: list[UploadedFile]) -> list[IngestResult]:
    prepared, failures = [], []
    for f in files:
        try:
            prepared.append(ingest_prepare(data=f.data, filename=f.name))
        except IngestError as exc:
            failures.append({"name": f.name, "code": exc.code, "detail": exc.message, "status": exc.http_status})
    if failures:
        statuses = {f["status"] for f in failures}
        status = next(s for s in (*_STATUS_PRECEDENCE, *sorted(statuses)) if s in statuses)
        raise SubmissionRefused(
            status_code=status, code="invalid_files",
            detail=f"{len(failures)} of {len(files)} file(s) were refused; nothing was stored",
            files=failures,
        )
    return prepared


def _target_study(files: list[UploadedFile], prepared: list[IngestResult], *, client: Any) -> Study | None:
    dicom_studies = {r.dicom.original_uids["study"] for r in prepared if r.dicom is not None}
    if len(dicom_studies) > 1:
        raise SubmissionRefused(
            status_code=400, code="mixed_studies",
            detail="the DICOM files belong to different studies (Study Instance UIDs differ); "
                   "send one request per study",
            study_instance_uids=sorted(dicom_studies),
        )
    study_ids: set[int] = set()
    for result in prepared:
        study_ids |= existing_study_ids(result)
    if len(study_ids) > 1:
        raise SubmissionRefused(
            status_code=400, code="files_in_different_studies",
            detail="some files were already received as parts of different studies; send them separately",
        )
    if not study_ids:
        return None
    study = Study.objects.get(pk=study_ids.pop())
    if study.api_client_id != client.pk:
        raise SubmissionRefused(
            status_code=409, code="study_of_another_sender",
            detail="these files belong to a study that was submitted by another sender",
        )
    return study


def study_submit(
    *,
    client: Any,
    files: list[UploadedFile],
    accession_number: str = "",
    priority_hint: str = "",
    callback_url: str = "",
    idempotency_key: str = "",
    request: Any = None,
) -> Submission:
    """Store ``files`` as one study of ``client`` (see the module docstring for the rules)."""
    replay = study_replay(client=client, idempotency_key=idempotency_key)
    if replay is not None:
        return Submission(study=replay, replayed=True)
    if not files:
        raise SubmissionRefused(status_code=400, code="no_files", detail="send at least one file in the 'files' field")
    prepared = _prepare_all(files)
    target = _target_study(files, prepared, client=client)
    order = sorted(range(len(files)), key=lambda i: prepared[i].dicom is None)  # DICOM first
    submission = Submission(study=target)  # type: ignore[arg-type]
    created_files: list[str] = []
    try:
        with transaction.atomic():
            for i in order:
                outcome = image_ingest(
                    data=files[i].data, filename=files[i].name, prepared=prepared[i],
                    api_client=client, source=Study.Source.API, study=target,
                    accession_number=accession_number, priority_hint=priority_hint,
                    callback_url=callback_url,
                    idempotency_key=idempotency_key if target is None else "",
                    request=request,
                )
                if outcome.created:
                    created_files.append(outcome.image.file.name)
                submission.warnings.extend(outcome.warnings)
                submission.outcomes.append((files[i].name, outcome))
                target = outcome.study
            assert target is not None
            if callback_url and target.callback_url != callback_url:
                Study.objects.filter(pk=target.pk).update(callback_url=callback_url)
            audit_event_create(
                actor=None, actor_label=client.actor_label, action=AuditAction.STUDY_SUBMITTED, obj=target,
                request=request,
                details={"uid": target.uid, "files": len(files), "idempotency_key": idempotency_key,
                         "new_images": sum(o.created for _, o in submission.outcomes)},
            )
    except IntegrityError:
        _delete(created_files)
        replay = study_replay(client=client, idempotency_key=idempotency_key)
        if replay is not None:  # a concurrent request with the same key won the race
            return Submission(study=replay, replayed=True)
        raise
    except BaseException:
        _delete(created_files)
        raise
    submission.study = Study.objects.get(pk=target.pk)
    return submission


def _delete(names: list[str]) -> None:
    for name in names:
        if name:
            default_storage.delete(name)
