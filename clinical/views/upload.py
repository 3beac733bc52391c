"""The upload page and its one-file endpoint.

The page (``static/js/upload.js``) sends every dropped or chosen file in its own request,
so each file's outcome shows as soon as it is known and one bad file cannot spoil the rest.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from clinical.ingest import IngestError, sanitize_filename
from clinical.selectors.uploads import RECENT_UPLOADS_HOURS, RECENT_UPLOADS_LIMIT, recent_uploads
from clinical.services.ingest import image_ingest
from radviewer.lib import metrics
from radviewer.lib.auth import permission_required_403
from radviewer.lib.http import multipart_error_message

# Room for the multipart envelope (boundaries, part headers) around the file itself: the
# early check must not refuse a file of exactly MAX_UPLOAD_BYTES; the service checks the
# file's own size exactly.
MULTIPART_OVERHEAD_BYTES = 16 * 1024
TEMPLATE = "clinical/upload.html"


@require_GET
@permission_required_403("accounts.upload_studies")
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(request, TEMPLATE, {"max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024), **_recent(request)})


def _recent(request: HttpRequest) -> dict:
    """This user's uploads of the last day, from the database: they outlive a reload."""
    return {
        "recent_uploads": recent_uploads(user=request.user),
        "recent_hours": RECENT_UPLOADS_HOURS,
        "recent_limit": RECENT_UPLOADS_LIMIT,
    }


@csrf_exempt  # only so the size check runs before the body is parsed; CSRF is checked below
@require_POST
@permission_required_403("accounts.upload_studies")
def upload_file(request: HttpRequest) -> HttpResponse:
    """POST one file (field ``file``): 201 created, 200 duplicate, 4xx with the reason.

    A body larger than the limit is refused from its Content-Length alone (413): neither
    Django's CSRF check nor the multipart parser gets to read it.
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES:
        error = IngestError(
            "too_large",
            f"the upload is {length / 1e6:.1f} MB; the maximum is "
            f"{settings.MAX_UPLOAD_BYTES / 1e6:.1f} MB per file",
            details={"size": length, "max_bytes": settings.MAX_UPLOAD_BYTES},
        )
        metrics.ingest_refused(reason=error.code)
        return _result(request, filename="", error=error)
    # Parsed here, before the CSRF check reads it: a malformed body gets a reason, not Django's
    # bare "Bad Request (400)". Nothing is stored either way.
    try:
        request.POST  # noqa: B018
    except MultiPartParserError as exc:
        return _result(request, filename="", message=multipart_error_message(exc), status=400)
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent):
        return _result(request, filename="", status=400,
                       message="the form has too many fields or too much form data; send one file in the field 'file'")
    return _upload_checked(request)


@csrf_protect
def _upload_checked(request: HttpRequest) -> HttpResponse:
    files = request.FILES.getlist("file")
    if len(files) != 1:
        message = "send exactly one file (field 'file') per request" if files else (
            "no file received; choose or drop an image (PNG, JPEG or DICOM)"
        )
        return _result(request, filename="", message=message, status=400)
    upload = files[0]
    try:
        # Read one byte past the limit: the service then refuses it with its own message.
        data = upload.read(settings.MAX_UPLOAD_BYTES + 1)
        outcome = image_ingest(data=data, filename=upload.name or "", actor=request.user, request=request)
    except IngestError as error:
        return _result(request, filename=sanitize_filename(upload.name or ""), error=error)
    # The uploader's own file name, echoed so a drop of several files can be told apart; never
    # read back from storage (a duplicate's stored name may be another user's).
    return _result(request, filename=sanitize_filename(upload.name or ""), outcome=outcome,
                   status=201 if outcome.created else 200)


def _result(
    request: HttpRequest,
    *,
    filename: str,
    outcome=None,
    error: IngestError | None = None,
    message: str = "",
    status: int | None = None,
) -> HttpResponse:
    context = {
        "filename": filename,
        "outcome": outcome,
        "error": error,
        "message": message or (error.message if error else ""),
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    status = status or (error.http_status if error else 200)
    # The script asks for the fragment (HX-Request); a plain form post gets the whole page.
    if request.htmx:
        return render(request, f"{TEMPLATE}#upload_result", {**context, "results": [context]}, status=status)
    return render(request, TEMPLATE, {**context, "results": [context], **_recent(request)}, status=status)
