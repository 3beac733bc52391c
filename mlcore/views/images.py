"""Thumbnails of dataset images for the console (data page samples, comparison flip lists)."""

from __future__ import annotations

import io

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from mlcore.ml.data import open_store
from mlcore.models import DatasetVersion
from mlcore.selectors.data import dataset_manifest_has_path
from radviewer.lib.auth import permission_required_403

THUMB_SIZES = (64, 96, 128, 256)


@require_GET
@permission_required_403("accounts.manage_models")
def dataset_image(request: HttpRequest, slug: str) -> HttpResponse:
    """``?path=<manifest path>&size=96``: a PNG thumbnail of one image of a dataset version.

    Only paths the manifest lists are served (never an arbitrary file of the store)."""
    from PIL import Image  # Pillow: the web process needs it only for this page

    dataset = get_object_or_404(DatasetVersion, slug=slug)
    path = request.GET.get("path", "")
    try:
        size = int(request.GET.get("size", "96"))
    except ValueError:
        size = 96
    size = min(THUMB_SIZES, key=lambda s: abs(s - size))
    if not dataset_manifest_has_path(dataset=dataset, path=path):
        raise Http404(f"{path!r} is not an image of dataset {slug}")
    pixels = open_store(dataset.store_uri).read_image(path)
    img = Image.fromarray(pixels)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    response = HttpResponse(buf.getvalue(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
