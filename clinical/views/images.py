"""Image bytes for the viewer, served only through access checks (never from MEDIA_URL).

Each response is private to the reader's browser cache; fetching a study's pixels is a
view of the study and is audited like opening its page.
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from clinical.ingest import IngestError
from clinical.models import Image, Prediction
from clinical.selectors.overlays import attribution_key, overlay_png_region, prediction_classes
from clinical.selectors.pixels import image_pixel_probe
from clinical.services.display import image_display_ensure
from clinical.services.triage import ai_hidden
from clinical.views._common import study_and_image
from mlcore.services.inference import ATTRIBUTION_METHODS
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

CACHE_CONTROL = "private, max-age=3600"
# One ``image.viewed`` per reader and image per opening: the display image, its heat map and
# attribution maps fetched within this window are the same view (the first fetch's kind is kept).
VIEW_COALESCE_S = 600


def _is_prefetch(request: HttpRequest) -> bool:
    """The browser fetches it ahead of need (the study page's ``<link rel="prefetch">`` of the
    next study's image): Chromium sends ``Sec-Purpose: prefetch``, older browsers ``Purpose``."""
    purpose = request.headers.get("Sec-Purpose") or request.headers.get("Purpose") or ""
    return purpose.split(";")[0].strip().lower() == "prefetch"


def _png_response(request: HttpRequest, image: Image, name: str, kind: str) -> FileResponse:
    if not name or not default_storage.exists(name):
        raise Http404(f"No {kind} image stored")
    details = {"study": image.study.uid, "kind": kind}
    if _is_prefetch(request):
        # Sent to the reader's browser, so recorded, but said to be a prefetch: the reader
        # may never open that study (the page view, when it happens, is its own event).
        details["prefetch"] = True
    audit_event_create(actor=request.user, action=AuditAction.IMAGE_VIEWED, obj=image, request=request,
                       details=details, coalesce_s=VIEW_COALESCE_S)
    response = FileResponse(default_storage.open(name, "rb"), content_type="image/png")
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _succeeded_prediction(image: Image) -> Prediction:
    if ai_hidden(image.study):
        raise Http404("Blinded read: the AI is hidden until a verdict is saved")
    prediction = image.latest_prediction()
    if prediction is None or prediction.status != Prediction.Status.SUCCEEDED:
        raise Http404("No finished AI result for this image")
    return prediction


@require_GET
def image_display(request: HttpRequest, uid: str, image_id: int) -> FileResponse:
    """The 8-bit greyscale display PNG (DICOM already through its Modality and VOI LUTs)."""
    study, image = study_and_image(request, uid, image_id)
    image.study = study
    name, _ = image_display_ensure(image)  # rendered here if the worker has not yet
    return _png_response(request, image, name, "display")


@require_GET
def image_heatmap(request: HttpRequest, uid: str, image_id: int) -> FileResponse:
    """The RGBA attention heat map of the latest prediction, same size as the image."""
    study, image = study_and_image(request, uid, image_id)
    image.study = study
    return _png_response(request, image, _succeeded_prediction(image).heatmap_png.name, "heatmap")


def _overlay_png_name(request: HttpRequest, image: Image, source: str) -> str:
    """The stored PNG of overlay ``source``: "attention" (the prediction-time map) or an
    attribution method, for ``?class=`` (default: the top class); 404 when not ready."""
    prediction = _succeeded_prediction(image)
    if source == "attention":
        return prediction.heatmap_png.name
    if source not in ATTRIBUTION_METHODS:
        raise Http404("No such attribution method")
    target = request.GET.get("class") or ""
    if target and target not in prediction_classes(prediction):
        raise Http404("No such class for this prediction")
    key = attribution_key(source, target or prediction.top_class, prediction.top_class)
    state = prediction.attributions.get(key, {})
    if state.get("status") != "succeeded":
        raise Http404("This attribution is not ready")
    return state.get("png", "")


@require_GET
def image_attribution(request: HttpRequest, uid: str, image_id: int, method: str) -> FileResponse:
    """A computed attribution map (RGBA, like the heat map); ``?class=`` picks the class."""
    if method not in ATTRIBUTION_METHODS:
        raise Http404("No such attribution method")
    study, image = study_and_image(request, uid, image_id)
    image.study = study
    return _png_response(request, image, _overlay_png_name(request, image, method), method)


@require_GET
def overlay_region(request: HttpRequest, uid: str, image_id: int, source: str) -> JsonResponse:
    """The highest-attention region of an overlay (``attention`` or an attribution method,
    ``?class=``) as JSON in image pixels: ``box`` [x0, y0, x1, y1] and ``outline`` segments
    (see clinical.selectors.overlays.attention_region); ``region`` is null for a flat map.
    Derived from a map the reader already fetched (and whose fetch was audited)."""
    study, image = study_and_image(request, uid, image_id)
    image.study = study
    name = _overlay_png_name(request, image, source)
    if not name or not default_storage.exists(name):
        raise Http404("No overlay image stored")
    region = overlay_png_region(name, width=image.width, height=image.height)
    response = JsonResponse({"source": source, "region": region})
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_GET
def image_probe(request: HttpRequest, uid: str, image_id: int) -> JsonResponse:
    """The stored value (and its Modality LUT output) at ?x=&y= (image pixel column and row)
    of a DICOM image, for the viewer's pixel-value probe; 400 for bad coordinates or a
    PNG/JPEG (the viewer shows their 8-bit display value itself)."""
    study, image = study_and_image(request, uid, image_id)
    image.study = study
    try:
        x, y = int(request.GET.get("x", "")), int(request.GET.get("y", ""))
    except ValueError:
        return JsonResponse({"error": "x and y must be integer pixel coordinates"}, status=400)
    try:
        probe = image_pixel_probe(image, x=x, y=y)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except IngestError as exc:
        return JsonResponse({"error": f"the stored image cannot be read: {exc}"}, status=422)
    audit_event_create(actor=request.user, action=AuditAction.IMAGE_VIEWED, obj=image, request=request,
                       details={"study": study.uid, "kind": "probe"}, coalesce_s=VIEW_COALESCE_S)
    response = JsonResponse(probe.as_dict())
    response["Cache-Control"] = CACHE_CONTROL
    return response
