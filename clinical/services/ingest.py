"""One ingest path for the upload page, the REST API and DICOMweb STOW-RS.

Bytes are validated and de-identified by the pure core (``clinical.ingest``), stored, then the
rows are written in one transaction; if that transaction fails the stored file is removed,
so nothing is half-saved (no orphan files, no study without images). The viewer PNG is not
part of ingest: ``clinical.services.display`` renders it from the stored copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Value

from clinical.ingest import IngestError, IngestResult, ingest_bytes
from clinical.ingest.deid import BURNED_IN_WARNING
from clinical.ingest.results import MODALITY_FOR_RASTER
from clinical.models import Image, OriginalIdentifiers, Study, new_uid
from clinical.services.predictions import prediction_request
from mlcore.services.blinding import blinded_read_chosen
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib import metrics
from radviewer.lib.phi_crypto import phi_lookup_hmac


@dataclass(frozen=True)
class ImageIngestOutcome:
    image: Image
    study: Study
    created: bool  # False when the same file (or SOP instance) was already stored
    scope_warning: str

    @property
    def warnings(self) -> list[str]:
        """What the sender and the reader should know about this image (labelled "image N")."""
        out = [self.scope_warning] if self.scope_warning else []
        if self.image.burned_in_annotation:
            out.append(BURNED_IN_WARNING)
        return [f"{self.image.display_name}: {w}" for w in out]


def _existing_image(result: IngestResult) -> Image | None:
    """The stored image with these bytes or, for DICOM, this SOP Instance UID (bytes first).

    One narrow query (primary keys only) answers the common case, a new file, with nothing
    found; the image itself is loaded only when there is one."""
    matches = (Image.objects.filter(sha256=result.sha256).order_by()
               .annotate(by_bytes=Value(True)).values_list("pk", "by_bytes"))
    if result.dicom is not None:
        by_sop = (Image.objects.filter(original_ids__sop_uid_hmac=phi_lookup_hmac(result.dicom.original_uids["sop"]))
                  .order_by().annotate(by_bytes=Value(False)).values_list("pk", "by_bytes"))
        matches = matches.union(by_sop, all=True)
    found = sorted(matches, key=lambda row: (not row[1], row[0]))
    if not found:
        return None
    return Image.objects.select_related("study").filter(pk=found[0][0]).first()


def _actor_label(actor: Any, api_client: Any) -> str:
    return f"api:{api_client.name}" if api_client is not None else ""


def image_ingest(
    *,
    data: bytes,
    filename: str,
    actor: Any = None,
    api_client: Any = None,
    source: str = Study.Source.UPLOAD,
    study: Study | None = None,
    accession_number: str = "",
    priority_hint: str = "",
    callback_url: str = "",
    idempotency_key: str = "",
    request: Any = None,
    prepared: IngestResult | None = None,
) -> ImageIngestOutcome:
    """Validate, de-identify and store one file; create its study unless one is given.

    DICOM instances join the study of their (de-identified) Study Instance UID. Raises
    ``IngestError`` for bad input with a stable code and a reason for the reader.
    ``prepared`` is ``ingest_prepare(...)`` of the same bytes, for callers that validate a
    batch of files before storing any (the REST API: all or nothing).
    """
    result = prepared or ingest_prepare(data=data, filename=filename)
    existing = _existing_image(result)
    if existing is not None:
        audit_event_create(
            actor=actor, actor_label=_actor_label(actor, api_client), action=AuditAction.IMAGE_DUPLICATE_LINKED,
            obj=existing, request=request, details={"filename": result.filename, "sha256": result.sha256},
        )
        return ImageIngestOutcome(existing, existing.study, False, existing.study.scope_warning)

    saved: list[str] = []
    try:
        stored_name = default_storage.save(
            f"images/{result.sha256[:2]}/{result.sha256}.{_extension(result.format)}",
            ContentFile(result.stored_bytes),
        )
        saved.append(stored_name)
        with transaction.atomic():
            study = study or _study_for(
                result, source=source, actor=actor, api_client=api_client,
                accession_number=accession_number, priority_hint=priority_hint,
                callback_url=callback_url, idempotency_key=idempotency_key,
            )
            image = _image_create(result, study=study, stored_name=stored_name)
            prediction_request(image=image, new_image=True)
            # Last in the transaction: the audit chain's lock is held from here to the commit,
            # and every writer of the installation queues on it.
            audit_event_create(
                actor=actor, actor_label=_actor_label(actor, api_client), action=AuditAction.IMAGE_INGESTED,
                obj=image, request=request,
                details={"study": study.uid, "format": result.format, "source": source,
                         "sha256": result.sha256, "scope": result.scope},
            )
    except IntegrityError:
        # A concurrent request stored the same file first: link to it instead.
        for name in saved:
            default_storage.delete(name)
        existing = _existing_image(result)
        if existing is None:
            raise
        return ImageIngestOutcome(existing, existing.study, False, existing.study.scope_warning)
    except BaseException:
        for name in saved:
            default_storage.delete(name)
        raise
    return ImageIngestOutcome(image, study, True, result.scope_warning or "")


def ingest_prepare(*, data: bytes, filename: str) -> IngestResult:
    """The pure ingest core with this installation's key, limits and burned-in policy (no
    storage, no rows): every path calls it before storing anything, so a refusal saves nothing.
    A refusal is counted by its reason (``radviewer_ingest_refusals_total``)."""
    try:
        result = ingest_bytes(
            data,
            filename=filename,
            pseudonym_key=settings.PSEUDONYM_KEY.encode(),
            max_bytes=settings.MAX_UPLOAD_BYTES,
            max_pixels=settings.MAX_IMAGE_PIXELS,
        )
        if settings.REFUSE_BURNED_IN and result.dicom is not None and result.dicom.burned_in_annotation:
            raise IngestError("burned_in_annotation", details={"burned_in_annotation": "YES"})
    except IngestError as exc:
        metrics.ingest_refused(reason=exc.code)
        raise
    return result


def _extension(fmt: str) -> str:
    return {"png": "png", "jpeg": "jpg", "dicom": "dcm"}[fmt]


def _study_for(result: IngestResult, **fields: Any) -> Study:
    scope = result.scope
    warning = result.scope_warning or ""
    if result.dicom is not None:
        uid = result.dicom.deid_uids["study"]
        study = Study.objects.select_for_update().filter(uid=uid).first()
        if study is not None:
            return study
        modality = result.dicom.modality or ""
        patient_key = result.dicom.patient_pseudonym
        d = result.dicom.descriptors  # reduced before de-identification (clinical.ingest.descriptors)
        descriptors = {"age_band": d.age_band, "sex": d.sex, "body_part": d.body_part,
                       "view_position": d.view_position, "description": d.description}
    else:
        uid = new_uid()
        modality = MODALITY_FOR_RASTER
        patient_key = ""
        descriptors = {}
    api_client = fields.pop("api_client")
    actor = fields.pop("actor")
    return Study.objects.create(
        uid=uid,
        modality=modality,
        scope=scope,
        scope_source=Study.ScopeSource.HEADER if scope != Study.Scope.UNKNOWN else Study.ScopeSource.NONE,
        scope_warning=warning,
        patient_key=patient_key,
        blinded_read=blinded_read_chosen(study_uid=uid),
        submitted_by=actor if getattr(actor, "is_authenticated", False) else None,
        api_client_id=getattr(api_client, "pk", None),
        **descriptors,
        **fields,
    )


def _image_create(result: IngestResult, *, study: Study, stored_name: str) -> Image:
    decoded = result.decoded
    dicom = result.dicom
    spacing = decoded.dicom.pixel_spacing if decoded.dicom else None
    image = Image.objects.create(
        study=study,
        file=stored_name,
        original_name=result.filename,
        format=result.format,
        width=decoded.width,
        height=decoded.height,
        sha256=result.sha256,
        size_bytes=len(result.stored_bytes),
        sop_instance_uid=dicom.deid_uids["sop"] if dicom else "",
        series_instance_uid=dicom.deid_uids["series"] if dicom else "",
        sop_class_uid=dicom.deid_uids.get("sop_class", "") if dicom else "",
        frame_index=decoded.dicom.frame_index if decoded.dicom else None,
        window_center=decoded.window[0] if decoded.window else None,
        window_width=decoded.window[1] if decoded.window else None,
        pixel_spacing_row=spacing[0] if spacing else None,
        pixel_spacing_col=spacing[1] if spacing else None,
        spacing_source=decoded.dicom.spacing_source if spacing else "",
        burned_in_annotation=bool(dicom and dicom.burned_in_annotation),
    )
    if image.burned_in_annotation and not study.burned_in_annotation:
        Study.objects.filter(pk=study.pk).update(burned_in_annotation=True)
        study.burned_in_annotation = True
    if dicom is not None:
        OriginalIdentifiers.objects.create(
            image=image,
            study_instance_uid=dicom.original_uids["study"],
            series_instance_uid=dicom.original_uids["series"],
            sop_instance_uid=dicom.original_uids["sop"],
            sop_class_uid=dicom.original_uids.get("sop_class", ""),
            accession_number=dicom.accession_number_original or "",
            patient_id=dicom.original_patient.get("PatientID", ""),
            patient_name=dicom.original_patient.get("PatientName", ""),
            issuer_of_patient_id=dicom.original_patient.get("IssuerOfPatientID", ""),
            patient_birth_date=dicom.original_patient.get("PatientBirthDate", ""),
            patient_sex=dicom.original_patient.get("PatientSex", ""),
        )
    return image


__all__ = ["ImageIngestOutcome", "IngestError", "image_ingest", "ingest_prepare"]
