"""One error body for every API failure: ``{"code": ..., "detail": ..., ...}``.

Clients switch on ``code`` (stable, machine-readable) and show ``detail`` to a person. DRF's
default body carries only ``detail``; this adds the code and keeps field errors under
``fields`` and per-file errors under ``files``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from clinical.services.submission import SubmissionRefused


class ApiError(exceptions.APIException):
    """An API failure with an explicit status, code and extra fields (e.g. per-file reasons)."""

    def __init__(self, *, status_code: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.code = code
        self.extra = extra


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        exc = _request_limit_error(exc)  # Django's own limits; it would answer a bare HTML 400
    if isinstance(exc, SubmissionRefused):  # the service's refusal, in the API's one error body
        exc = ApiError(status_code=exc.status_code, code=exc.code, detail=exc.detail, **exc.extra)
    if isinstance(exc, ApiError):
        return Response({"code": exc.code, "detail": str(exc.detail), **exc.extra}, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    detail = exc.detail
    if isinstance(detail, dict | list):
        codes = exc.get_codes()
        body = {"code": "invalid", "detail": "The request has invalid fields; see fields.", "fields": detail}
        if isinstance(codes, dict) and codes.get("non_field_errors"):
            body["detail"] = str(detail["non_field_errors"][0])
    else:
        body = {"code": str(exc.get_codes()), "detail": str(detail)}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
        body["retry_after"] = int(exc.wait)
    response.data = body
    return response


def _request_limit_error(exc: Exception) -> ApiError:
    if isinstance(exc, RequestDataTooBig):
        return ApiError(status_code=413, code="too_large",
                        detail=f"the request body (files aside) is larger than the maximum of "
                               f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")
    if isinstance(exc, TooManyFilesSent):
        return ApiError(status_code=400, code="invalid",
                        detail=f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files in one request")
    return ApiError(status_code=400, code="invalid",
                    detail=f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields in one request")
