"""DICOMweb for PACS senders: STOW-RS (store) and a small QIDO-RS (which studies have results).

STOW-RS, PS3.18 10.5: ``POST /dicomweb/studies[/{StudyInstanceUID}]`` with
``multipart/related; type="application/dicom"``; each part goes through ``image_ingest``
(source DICOMweb) on its own, so one bad instance does not block the others. The answer is
the Store Instances Response Module, DICOM JSON by default or XML when Accept asks for
``application/dicom+xml``, naming the instances with the UIDs the SENDER sent (it must
recognise its own instances): 200 all stored, 202 some failed, 409 all failed, 400 malformed
body, 413 too large, 415 not multipart/related of application/dicom.
``RetrieveURL`` points at the REST result of the study (RadViewer does not serve WADO-RS).

Failure reasons (0008,1197): 0xA700 out of resources (too large), 0xA900 instance not of the
study in the URL, 0x0122 SOP class not supported (no pixel data, e.g. an SR), 0x0124 not
authorised (the study belongs to another sender), 0xC000 cannot understand (corrupt,
undecodable, not DICOM), 0x0110 processing failure (our fault; retry).
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pydicom
from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from clinical.api.authentication import DicomWebAuthentication
from clinical.api.base import ApiView, error_responses
from clinical.api.errors import ApiError
from clinical.api.multipart import MultipartError, parse_content_type, split_multipart
from clinical.api.renderers import DicomJSONRenderer, DicomXMLRenderer
from clinical.ingest import IngestError
from clinical.models import Study
from clinical.selectors.results import absolute
from clinical.selectors.studies import client_dicom_results, study_owners
from clinical.services.ingest import image_ingest, ingest_prepare
from radviewer.audit.actions import AuditAction
from radviewer.lib import metrics
from radviewer.lib.http import read_body

log = logging.getLogger(__name__)

PROCESSING_FAILURE, NOT_AUTHORIZED, SOP_CLASS_NOT_SUPPORTED = 0x0110, 0x0124, 0x0122
OUT_OF_RESOURCES, STUDY_MISMATCH, CANNOT_UNDERSTAND = 0xA700, 0xA900, 0xC000
# QIDO offsets beyond this are clamped (there are no rows that far; larger values would
# overflow the database's integer in OFFSET).
MAX_OFFSET = 2**31 - 1
_REASONS = {"too_large": OUT_OF_RESOURCES, "too_many_pixels": OUT_OF_RESOURCES,
            "dicom_no_pixels": SOP_CLASS_NOT_SUPPORTED,
            # refused by this installation's policy, not because it is malformed
            "burned_in_annotation": NOT_AUTHORIZED}


def _el(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _sop_uids(data: bytes) -> dict[str, str]:
    """Best effort SOP Class and Instance UIDs of a part the ingest refused, for the failure item."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True,
                             specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return {"sop_class": str(ds.get("SOPClassUID", "") or ""), "sop": str(ds.get("SOPInstanceUID", "") or "")}
    except Exception:
        return {"sop_class": "", "sop": ""}


DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"


def _dicom_errors(*codes: int) -> dict:
    """Error statuses as the API documents them, for both JSON media types a DICOMweb client
    may have asked for (the body is the same ErrorSerializer object)."""
    plain = error_responses(*codes)
    return {**plain, **{(code, DICOM_JSON): response for (code, _), response in plain.items()}}


_STOW_RESPONSE = OpenApiResponse(OpenApiTypes.OBJECT, description=(
    "PS3.18 Store Instances Response Module as DICOM JSON (or XML with Accept: application/dicom+xml): "
    "RetrieveURL (0008,1190), ReferencedSOPSequence (0008,1199) of stored instances, FailedSOPSequence "
    "(0008,1198) with a FailureReason (0008,1197) per refused instance"))
_STOW_SCHEMA = {
    "request": {"multipart/related": OpenApiTypes.BINARY},
    "responses": {
        **{(code, media): _STOW_RESPONSE for code in (200, 202, 409) for media in (DICOM_JSON, DICOM_XML)},
        **_dicom_errors(400, 401, 403, 411, 413, 415, 429),
    },
    "description": (
        'Body: multipart/related; type="application/dicom"; boundary=..., one DICOM Part 10 instance per part. '
        "200: every instance stored; 202: some stored, some refused; 409: none stored. Each stored instance "
        "is de-identified and triaged asynchronously (poll RetrieveURL or receive a webhook). Chunked bodies "
        "are accepted under the production server (gunicorn). Authenticate with Bearer <token> or HTTP Basic "
        "(user = the client's name, password = its token), as PACS such as Orthanc send."),
}


class StowView(ApiView):
    authentication_classes = [DicomWebAuthentication]
    required_scope = "submit"
    renderer_classes = [DicomJSONRenderer, DicomXMLRenderer, JSONRenderer]
    parser_classes: list = []  # the body is read raw, below

    @extend_schema(operation_id="dicomweb_stow_study", tags=["DICOMweb"],
                   summary="STOW-RS: store instances of the study named in the URL", **_STOW_SCHEMA)
    def post(self, request, study_uid: str | None = None):
        body = self._body(request)
        parts = self._parts(request, body)
        stored, failed, studies = [], [], set()
        for number, part in enumerate(parts, start=1):
            outcome = self._store(request, part.content_type, part.body, number, study_uid)
            if "failure" in outcome:
                failed.append(outcome)
            else:
                stored.append(outcome)
                studies.add(outcome["study"])
        dataset: dict[str, Any] = {}
        if len(studies) == 1:
            dataset["00081190"] = _el("UR", self._retrieve_url(next(iter(studies))))
        if stored:
            dataset["00081199"] = _el("SQ", *[{
                "00081150": _el("UI", o["sop_class"]), "00081155": _el("UI", o["sop"]),
                "00081190": _el("UR", self._retrieve_url(o["study"])),
            } for o in stored])
        if failed:
            dataset["00081198"] = _el("SQ", *[{
                "00081150": _el("UI", *([o["sop_class"]] if o["sop_class"] else [])),
                "00081155": _el("UI", *([o["sop"]] if o["sop"] else [])),
                "00081197": _el("US", o["failure"]),
            } for o in failed])
        if failed:
            # Stored parts have their own image.ingested / image.duplicate_linked events (written
            # in the ingest transaction); refused parts are recorded here, with the reasons.
            self.audit(AuditAction.DICOMWEB_STOW_REFUSED, None, stored=len(stored), failed=[
                {"part": o["part"], "reason": f"0x{o['failure']:04X}", "detail": o["detail"]} for o in failed])
        status = 200 if not failed else 202 if stored else 409
        return Response(dataset, status=status)

    def _retrieve_url(self, study_uid: str) -> str:
        return absolute(reverse("api:study-detail", kwargs={"uid": study_uid}), self.request)

    def _body(self, request) -> bytes:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ApiError(status_code=400, code="bad_content_length",
                           detail="Content-Length is not a number") from None
        if length > settings.MAX_UPLOAD_BYTES:
            raise ApiError(status_code=413, code="too_large",
                           detail=f"the request body is {length:,} bytes; the maximum is {settings.MAX_UPLOAD_BYTES:,}")
        ctype = parse_content_type(request.META.get("CONTENT_TYPE", ""))
        if ctype.media_type != "multipart/related":
            raise ApiError(status_code=415, code="unsupported_media_type",
                           detail='STOW-RS takes multipart/related; type="application/dicom"')
        if ctype.params.get("type", "application/dicom").lower() != "application/dicom":
            raise ApiError(status_code=415, code="unsupported_media_type",
                           detail="only Part 10 instances (type=application/dicom) are accepted, "
                                  "not metadata with bulk data")
        if not ctype.params.get("boundary"):
            raise ApiError(status_code=400, code="malformed_multipart",
                           detail="the Content-Type has no boundary parameter")
        if length == 0 and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # radviewer.wsgi gives a de-chunked body its Content-Length (gunicorn); only an
            # app not served through it (a test server) gets here with a body it cannot read.
            raise ApiError(status_code=411, code="length_required",
                           detail="this server cannot read a chunked request body; send a Content-Length")
        body = read_body(request._request, settings.MAX_UPLOAD_BYTES)
        if len(body) > settings.MAX_UPLOAD_BYTES:
            raise ApiError(status_code=413, code="too_large", detail="the request body is larger than the maximum")
        self._boundary = ctype.params["boundary"]
        return body

    def _parts(self, request, body: bytes):
        try:
            parts = split_multipart(body, self._boundary)
        except MultipartError as exc:
            raise ApiError(status_code=400, code="malformed_multipart", detail=str(exc)) from None
        if not parts:
            raise ApiError(status_code=400, code="no_instances", detail="the body has no parts")
        return parts

    def _store(self, request, content_type: str, data: bytes, number: int, study_uid: str | None) -> dict:
        failure: dict[str, Any] = {"part": number, "sop_class": "", "sop": ""}
        if content_type and content_type != "application/dicom":
            return {**failure, **_sop_uids(data), "failure": CANNOT_UNDERSTAND,
                    "detail": f"part type {content_type} is not application/dicom"}
        try:
            try:
                result = ingest_prepare(data=data, filename=f"stow-part-{number}.dcm")
            except IngestError:
                failure.update(_sop_uids(data))  # name the refused instance as far as it can be read
                raise
            if result.dicom is None:
                metrics.ingest_refused(reason="unsupported_type")
                raise IngestError("unsupported_type", f"content is {result.format.upper()}, expected DICOM")
            original = result.dicom.original_uids
            failure.update(sop_class=original.get("sop_class", ""), sop=original["sop"])
            if study_uid and original["study"] != study_uid:
                return {**failure, "failure": STUDY_MISMATCH,
                        "detail": f"instance of study {original['study']}, not of {study_uid}"}
            if study_owners(result) - {self.client.pk}:
                return {**failure, "failure": NOT_AUTHORIZED, "detail": "the study belongs to another sender"}
            outcome = image_ingest(data=data, filename=result.filename, prepared=result, api_client=self.client,
                                   source=Study.Source.DICOMWEB, request=request)
        except IngestError as exc:
            return {**failure, "failure": _REASONS.get(exc.code, CANNOT_UNDERSTAND), "detail": exc.message}
        except Exception as exc:  # stored nothing (image_ingest cleans up); the sender may retry
            log.exception("STOW-RS part %s failed", number)
            return {**failure, "failure": PROCESSING_FAILURE, "detail": f"{type(exc).__name__}"}
        return {"part": number, "sop_class": failure["sop_class"], "sop": failure["sop"], "study": outcome.study.uid}


class DicomWebStudiesView(StowView):
    """``/dicomweb/studies``: STOW-RS (POST, scope submit) and a QIDO-RS subset (GET, scope
    read): this client's DICOM studies that have an AI result, named by their original UIDs."""

    required_scope = {"GET": "read", "POST": "submit"}

    @extend_schema(operation_id="dicomweb_stow", tags=["DICOMweb"],
                   summary="STOW-RS: store instances (of one or more studies)", **_STOW_SCHEMA)
    def post(self, request, study_uid: str | None = None):
        return super().post(request, study_uid)

    @extend_schema(
        operation_id="dicomweb_qido_studies", tags=["DICOMweb"],
        summary="QIDO-RS: this client's DICOM studies that have an AI result",
        parameters=[
            OpenApiParameter("StudyInstanceUID", str, description="the original Study Instance UID, exact"),
            OpenApiParameter("AccessionNumber", str, description="the sender's accession number, exact"),
            OpenApiParameter("limit", int, description="1-1000, default 100"),
            OpenApiParameter("offset", int, description=">= 0, default 0"),
        ],
        responses={
            (200, DICOM_JSON): OpenApiResponse({"type": "array", "items": {"type": "object"}}, description=(
                "A JSON array of DICOM JSON datasets: StudyInstanceUID, AccessionNumber, ModalitiesInStudy, "
                "NumberOfStudyRelatedInstances, RetrieveURL (the study's result in the REST API)")),
            **_dicom_errors(400, 401, 403, 406, 429),
        },
    )
    def get(self, request):
        if isinstance(request.accepted_renderer, DicomXMLRenderer):
            raise NotAcceptable("QIDO-RS answers application/dicom+json here")
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", 100)), 1), 1000)
            offset = min(max(int(params.get("offset", 0)), 0), MAX_OFFSET)
        except ValueError:
            raise ApiError(status_code=400, code="invalid_query", detail="limit and offset must be integers") from None
        found = client_dicom_results(client=self.client, study_instance_uid=params.get("StudyInstanceUID", ""),
                                     accession_number=params.get("AccessionNumber", ""), offset=offset, limit=limit,
                                     request=request)
        matches = [{
            "0020000D": _el("UI", r.source_ids.study_instance_uid),
            "00080050": _el("SH", *([r.source_ids.accession_number] if r.source_ids.accession_number else [])),
            "00080061": _el("CS", *([r.study.modality] if r.study.modality else [])),
            "00201208": _el("IS", r.image_count),
            "00081190": _el("UR", self._retrieve_url(r.study.uid)),
        } for r in found]
        self.audit(AuditAction.DICOMWEB_QIDO, None, count=len(matches))
        return Response(matches)
