"""The base of every integration view: token auth, scope check, per-client rate limit, audit.

Errors are always JSON (``errors.api_exception_handler``), also on views whose success body is
a PNG, a DICOM file or FHIR JSON, so a client parses failures one way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from clinical.api.authentication import BearerTokenAuthentication, client_of
from clinical.api.permissions import HasScope
from clinical.api.renderers import BinaryRenderer, FhirJSONRenderer
from clinical.api.serializers import ErrorSerializer
from clinical.api.throttling import ApiClientRateThrottle
from clinical.models import ApiClient, Study
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

JSON = "application/json"


class ApiView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiClientRateThrottle]
    renderer_classes = [JSONRenderer]
    required_scope: str | dict[str, str] = "read"

    @property
    def client(self) -> ApiClient:
        return client_of(self.request)

    def audit(self, action: AuditAction, study: Study | None = None, *, coalesce: bool = False, **details: Any) -> None:
        """Record ``action`` for this client; ``coalesce`` for repeated reads (status polling):
        once per ``AUDIT_READ_WINDOW_S`` per study."""
        audit_event_create(actor=None, actor_label=self.client.actor_label, action=action, obj=study,
                           request=self.request, details=details,
                           coalesce_s=settings.AUDIT_READ_WINDOW_S if coalesce else 0)

    def finalize_response(self, request, response, *args, **kwargs):
        renderer = getattr(request, "accepted_renderer", None)
        is_error = getattr(response, "status_code", 200) >= 400
        not_bytes = not isinstance(getattr(response, "data", b""), bytes)  # errors, OPTIONS metadata
        binary_or_fhir = renderer is None or isinstance(renderer, BinaryRenderer | FhirJSONRenderer)
        if (is_error and binary_or_fhir) or (isinstance(renderer, BinaryRenderer) and not_bytes):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSON
        return super().finalize_response(request, response, *args, **kwargs)


def error_responses(*codes: int) -> dict:
    """OpenAPI entries for error statuses, all ``application/json`` ErrorSerializer bodies."""
    descriptions = {
        400: "Malformed request (see code and detail)",
        401: "Missing, malformed, wrong or revoked token (WWW-Authenticate says what to send)",
        403: "The client lacks the scope this endpoint needs",
        404: "No such study among this client's studies",
        406: "Not acceptable: the Accept header asks for a media type this endpoint does not produce",
        409: "Conflict (see code and detail)",
        411: "Length required: a chunked body this server cannot read (send a Content-Length)",
        413: "Request body larger than the maximum",
        415: "Unsupported media type",
        422: "Unprocessable content",
        429: "Over this client's rate limit; Retry-After says when to try again",
    }
    return {(code, JSON): OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in codes}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "clinical.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "API client token from `manage.py create_api_client`."}


class DicomWebScheme(OpenApiAuthenticationExtension):
    target_class = "clinical.api.authentication.DicomWebAuthentication"
    name = "dicomWebAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


BINARY = OpenApiTypes.BINARY
