"""The viewer PNG of an image, rendered from the stored copy when first needed.

Ingest stores the de-identified original and acknowledges; encoding the 8-bit PNG the viewer
shows (and the model reads) happens here, in the inference task or on the first request for
the picture, whichever comes first. Concurrent renders of one image are harmless: the first
to record its file wins, the others delete theirs and use it.
"""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from clinical.ingest import render_display
from clinical.models import Image


def image_display_ensure(image: Image) -> tuple[str, np.ndarray | None]:
    """Storage name of ``image``'s viewer PNG, rendering it if missing; the pixels too when
    this call rendered them (else None: read them with ``image_display_pixels``)."""
    name = image.display_file.name
    if name and default_storage.exists(name):
        return name, None
    with default_storage.open(image.file.name, "rb") as fh:
        stored = fh.read()
    png, pixels = render_display(stored, format=image.format, max_pixels=settings.MAX_IMAGE_PIXELS)
    new_name = default_storage.save(f"display/{image.sha256[:2]}/{image.sha256}.png", ContentFile(png))
    claimed = Image.objects.filter(pk=image.pk, display_file__in=["", name]).update(display_file=new_name)
    if not claimed:  # another process recorded its render first
        default_storage.delete(new_name)
        image.refresh_from_db(fields=["display_file"])
        return image.display_file.name, None
    image.display_file.name = new_name
    return new_name, pixels


def image_display_pixels(image: Image) -> np.ndarray:
    """The 8-bit greyscale pixels the viewer shows and the model classifies (H x W uint8)."""
    name, pixels = image_display_ensure(image)
    if pixels is not None:
        return pixels
    with default_storage.open(name, "rb") as fh:
        return np.asarray(PILImage.open(io.BytesIO(fh.read())).convert("L"))


def image_display_bytes(image: Image) -> bytes:
    name, _ = image_display_ensure(image)
    with default_storage.open(name, "rb") as fh:
        return fh.read()
