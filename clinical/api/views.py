"""REST endpoints under /api/v1/: thin adapters around the submission and review services,
the study selectors and the result renderers (``fhir``, ``sr``). Every call is audited as
``api:<client name>``."""

from __future__ import annotations

import re
from datetime import UTC

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from clinical.access import access_study_for_client
from clinical.api import serializers as s
from clinical.api.base import BINARY, JSON, ApiView, error_responses
from clinical.api.errors import ApiError
from clinical.api.fhir import diagnostic_report
from clinical.api.parsers import JSONParser, MultiPartParser
from clinical.api.renderers import DicomRenderer, FhirJSONRenderer, PNGRenderer
from clinical.api.sr import SrUnavailable, study_sr
from clinical.models import Image, Review, Study
from clinical.selectors.results import WITHHELD_REASON, ai_withheld, study_queryset, study_result, study_summary
from clinical.selectors.studies import client_studies, study_image, study_replay, study_sole_image
from clinical.services.callback_urls import CallbackUrlError, callback_url_validate
from clinical.services.reviews import review_create
from clinical.services.submission import Submission, UploadedFile, study_submit
from radviewer.audit.actions import AuditAction

IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1," + str(IDEMPOTENCY_KEY_MAX) + "}")


class StudyCursorPagination(CursorPagination):
    ordering = ("received_at", "id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # DRF's status for a cursor it did not issue: that page does not exist
            raise _invalid_cursor() from None

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, OverflowError):
            # A well-formed cursor whose position is not a date-time (DRF does not sign cursors).
            raise _invalid_cursor() from None


def _invalid_cursor() -> ApiError:
    return ApiError(status_code=404, code="invalid_cursor",
                    detail="the cursor is not one this API returned; start again without it")


StudyPageSerializer = inline_serializer("StudyPage", fields={
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": s.StudySummarySerializer(many=True),
})


def _parse_since(value: str):
    try:
        since = parse_datetime(value)
    except ValueError:
        since = None
    if since is None:
        raise ApiError(status_code=400, code="invalid_since",
                       detail="since must be an ISO 8601 date-time, e.g. 2025-01-31T08:00:00Z")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since


def _request_too_large(request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(status_code=400, code="bad_content_length", detail="Content-Length is not a number") from None
    if length > settings.MAX_UPLOAD_BYTES:
        raise ApiError(status_code=413, code="too_large",
                       detail=f"the request body is {length:,} bytes; the maximum is {settings.MAX_UPLOAD_BYTES:,}")


class StudyListCreateView(ApiView):
    required_scope = {"GET": "read", "POST": "submit"}
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="studies_list",
        summary="Poll this client's studies (oldest first, cursor pagination)",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only studies received at or after this time"),
            OpenApiParameter("status", str, enum=Study.Status.values),
            OpenApiParameter("accession_number", str),
            OpenApiParameter("study_instance_uid", str, description="The sender's original Study Instance UID"),
            OpenApiParameter("cursor", str, description="From `next` / `previous` of the previous page"),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 200},
                             description="Page size, 1-200 (default 50)"),
        ],
        responses={(200, JSON): StudyPageSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def get(self, request):
        params = request.query_params
        since = _parse_since(params["since"]) if "since" in params else None
        if "limit" in params and not (params["limit"].isdigit() and 1 <= int(params["limit"]) <= 200):
            raise ApiError(status_code=400, code="invalid_limit", detail="limit must be an integer from 1 to 200")
        if "status" in params and params["status"] not in Study.Status.values:
            raise ApiError(status_code=400, code="invalid_status",
                           detail=f"unknown status; accepted: {', '.join(Study.Status.values)}")
        qs = client_studies(client=self.client, since=since, status=params.get("status"),
                            accession_number=params.get("accession_number"),
                            study_instance_uid=params.get("study_instance_uid"))
        paginator = StudyCursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        self.audit(AuditAction.STUDY_LISTED, count=len(page), query={k: params[k] for k in params if k != "cursor"})
        return paginator.get_paginated_response([study_summary(st, request=request) for st in page])

    @extend_schema(
        operation_id="studies_submit",
        summary="Submit one study: one or more PNG/JPEG/DICOM files (multipart/form-data)",
        request={"multipart/form-data": s.StudySubmitSerializer},
        parameters=[OpenApiParameter(
            "Idempotency-Key", str, OpenApiParameter.HEADER, pattern=r"^[\x21-\x7e]{1,128}$",
            description="Repeat a request safely: the same key from the same client returns the original answer",
        )],
        responses={
            (202, JSON): OpenApiResponse(s.SubmitAcceptedSerializer, description="Stored; triage runs asynchronously"),
            **{(code, JSON): OpenApiResponse(s.SubmitErrorSerializer, description=desc) for code, desc in (
                (400, "Malformed request, bad field or file, or files of different studies"),
                (413, "Request or file too large"), (415, "Not multipart/form-data, or a file that is not an image"),
                (422, "A file could not be decoded (corrupt, no pixels, too many pixels)"))},
            **error_responses(401, 403, 409, 429),
        },
    )
    def post(self, request):
        _request_too_large(request)
        if not (request.content_type or "").lower().startswith("multipart/form-data"):
            raise ApiError(status_code=415, code="unsupported_media_type",
                           detail="send the files as multipart/form-data in the field 'files'")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise ApiError(status_code=400, code="invalid_idempotency_key",
                           detail=f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} visible ASCII characters")
        replay = study_replay(client=self.client, idempotency_key=key or "")
        if replay is not None:  # answered before the body is even parsed: a retried request may be cut short
            return self._accepted(Submission(study=replay, replayed=True), key)
        form = s.StudySubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        files = [UploadedFile(name=f.name or "upload", data=f.read()) for f in data["files"]]
        if sum(len(f.data) for f in files) > settings.MAX_UPLOAD_BYTES:
            raise ApiError(status_code=413, code="too_large",
                           detail=f"the files add up to more than {settings.MAX_UPLOAD_BYTES:,} bytes")
        callback = data["callback_url"].strip()
        if callback:
            try:
                callback_url_validate(callback, client=self.client)
            except CallbackUrlError as exc:
                raise ApiError(status_code=400, code="invalid_callback_url", detail=str(exc)) from None
        submission = study_submit(
            client=self.client, files=files, accession_number=data["accession_number"],
            priority_hint=data["priority_hint"], callback_url=callback, idempotency_key=key or "",
            request=request,
        )
        return self._accepted(submission, key)

    def _accepted(self, submission: Submission, key: str | None) -> Response:
        study, request = submission.study, self.request
        if submission.replayed:
            self.audit(AuditAction.STUDY_SUBMISSION_REPLAYED, study, idempotency_key=key)
            images = [{"id": img.pk, "name": img.display_name, "created": False} for img in study.images.all()]
        else:
            images = [{"id": o.image.pk, "name": o.image.display_name, "created": o.created}
                      for _, o in submission.outcomes]
        body = {**study_summary(study, request=request), "replayed": submission.replayed,
                "images": images, "warnings": submission.warnings}
        headers = {"Location": body["links"]["self"]}
        if submission.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


class StudyDetailView(ApiView):
    @extend_schema(operation_id="studies_retrieve", summary="A study's status and full result",
                   responses={(200, JSON): s.StudyResultSerializer, **error_responses(401, 403, 404, 429)})
    def get(self, request, uid: str):
        study = access_study_for_client(self.client, uid, queryset=study_queryset(include_patient=False))
        self.audit(AuditAction.STUDY_VIEWED, study, coalesce=True, uid=study.uid)
        return Response(study_result(study, client=self.client, request=request))


class StudyFhirView(ApiView):
    renderer_classes = [FhirJSONRenderer, JSONRenderer]

    @extend_schema(operation_id="studies_fhir", summary="The result as a FHIR R4 DiagnosticReport",
                   responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT, (200, JSON): OpenApiTypes.OBJECT,
                              **error_responses(401, 403, 404, 429)})
    def get(self, request, uid: str):
        study = access_study_for_client(self.client, uid, queryset=study_queryset(include_patient=False))
        self.audit(AuditAction.STUDY_RESULT_EXPORTED, study, format="fhir")
        report = diagnostic_report(study_result(study, client=self.client, request=request),
                                   patient_key=study.patient_key)
        return Response(report)


class StudySrView(ApiView):
    renderer_classes = [DicomRenderer]

    @extend_schema(operation_id="studies_sr", summary="The result as a DICOM Comprehensive 3D SR",
                   description="Filed under the sender's original Study Instance UID; 409 while no result "
                               "exists or for studies sent as PNG/JPEG.",
                   responses={(200, "application/dicom"): BINARY, **error_responses(401, 403, 404, 409, 429)})
    def get(self, request, uid: str):
        study = access_study_for_client(self.client, uid, queryset=study_queryset())
        try:
            payload = study_sr(study, study_result(study, client=self.client, request=request,
                                                   include_patient=True))
        except SrUnavailable as exc:
            raise ApiError(status_code=409, code="sr_unavailable", detail=str(exc)) from None
        self.audit(AuditAction.STUDY_RESULT_EXPORTED, study, format="dicom-sr")
        return Response(payload, content_type="application/dicom",
                        headers={"Content-Disposition": f'attachment; filename="{study.uid}-sr.dcm"'})


HEATMAP_RESPONSES = {(200, "image/png"): BINARY, **error_responses(401, 403, 404, 409, 429)}


class HeatmapView(ApiView):
    renderer_classes = [PNGRenderer]

    @extend_schema(operation_id="studies_heatmap", summary="Heat map (RGBA PNG, image size) of the first image",
                   responses=HEATMAP_RESPONSES)
    def get(self, request, uid: str, image_id: str | None = None):
        study = access_study_for_client(self.client, uid)
        if image_id is not None and not image_id.isdigit():
            raise NotFound("No such image in this study")
        image = study_image(study=study, image_id=int(image_id) if image_id is not None else None)
        if image is None:
            raise NotFound("No such image in this study")
        if ai_withheld(study):
            raise ApiError(status_code=409, code="ai_withheld", detail=WITHHELD_REASON)
        prediction = image.latest_prediction()
        if prediction is None or not prediction.heatmap_png:
            raise NotFound("No heat map for this image yet; its prediction is not finished")
        with default_storage.open(prediction.heatmap_png.name, "rb") as fh:
            png = fh.read()
        self.audit(AuditAction.STUDY_RESULT_EXPORTED, study, format="heatmap", image=image.pk)
        return Response(png, content_type="image/png")


class ImageHeatmapView(HeatmapView):
    @extend_schema(operation_id="studies_image_heatmap", summary="Heat map (RGBA PNG, image size) of one image",
                   parameters=[OpenApiParameter("image_id", int, OpenApiParameter.PATH)],
                   responses=HEATMAP_RESPONSES)
    def get(self, request, uid: str, image_id: str | None = None):
        return super().get(request, uid, image_id)


class FeedbackView(ApiView):
    required_scope = "feedback"
    parser_classes = [JSONParser]

    @extend_schema(operation_id="studies_feedback", summary="Send a reading (verdict and label) from the PACS/RIS",
                   request=s.FeedbackSerializer,
                   responses={(201, JSON): s.FeedbackAcceptedSerializer,
                              (400, JSON): OpenApiResponse(s.SubmitErrorSerializer, description="Invalid reading"),
                              **error_responses(401, 403, 404, 409, 415, 429)})
    def post(self, request, uid: str):
        study = access_study_for_client(self.client, uid)
        form = s.FeedbackSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        image = _feedback_image(study, data.get("image"))
        try:
            review = review_create(
                image=image, verdict=data["verdict"], label=data["label"], note=data["note"],
                impression=data["impression"], amendment=data["amendment"], source=Review.Source.API,
                source_label=self.client.actor_label, request=request,
            )
        except ValidationError as exc:
            raise ApiError(status_code=400, code="invalid_reading", detail="; ".join(exc.messages),
                           fields=exc.message_dict if hasattr(exc, "error_dict") else {}) from None
        except PermissionDenied as exc:
            raise ApiError(status_code=409, code="signed_off", detail=str(exc)) from None
        study.refresh_from_db(fields=["status"])
        return Response({"image": image.pk, "verdict": review.verdict, "label": review.label,
                         "study_status": study.status}, status=status.HTTP_201_CREATED)


def _feedback_image(study: Study, image_id: int | None) -> Image:
    if image_id is not None:
        image = study_image(study=study, image_id=image_id)
        if image is None:
            raise ApiError(status_code=400, code="unknown_image", detail=f"image {image_id} is not part of this study")
        return image
    image = study_sole_image(study=study)
    if image is None:
        raise ApiError(status_code=400, code="image_required",
                       detail="this study has several images; say which one in 'image'")
    return image
