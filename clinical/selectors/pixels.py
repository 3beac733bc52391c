"""Stored pixel values for the viewer's probe (issue 14 item 11).

The browser only has the 8-bit display PNG (after the Modality and VOI LUTs); the value a
reader asks for is the one in the stored, de-identified DICOM and its Modality LUT output
(e.g. Hounsfield units). The displayed frame is decoded once and kept in a small per-process
cache (a reader probes the same image many times in a row); PNG/JPEG have no stored units.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.files.storage import default_storage

from clinical.ingest.dicom import StoredFrame, read_stored_frame
from clinical.models import Image

_CACHED_FRAMES = 4


@dataclass(frozen=True)
class PixelProbe:
    x: int
    y: int
    stored: list[float]  # one value, or R, G, B for colour
    rescaled: list[float] | None  # Modality LUT output (grey only)
    rescale_type: str  # RescaleType (e.g. "HU"), "" when unspecified

    def as_dict(self) -> dict[str, object]:
        return {"x": self.x, "y": self.y, "stored": self.stored, "rescaled": self.rescaled, "units": self.rescale_type}


@lru_cache(maxsize=_CACHED_FRAMES)
def _stored_frame(name: str, sha256: str) -> StoredFrame:
    # sha256 keys the cache on the content, not only the storage name.
    with default_storage.open(name, "rb") as fh:
        return read_stored_frame(fh.read(), max_pixels=settings.MAX_IMAGE_PIXELS)


def image_pixel_probe(image: Image, *, x: int, y: int) -> PixelProbe:
    """The stored value at column ``x``, row ``y`` of a DICOM image's displayed frame.

    Raises ValueError for a PNG/JPEG (no stored units beyond the display value) or a point
    outside the image; IngestError if the stored copy cannot be decoded.
    """
    if image.format != Image.Format.DICOM:
        raise ValueError("a PNG/JPEG has no stored units: the viewer shows its 8-bit display value")
    if not (0 <= x < image.width and 0 <= y < image.height):
        raise ValueError(f"({x}, {y}) is outside the {image.width}x{image.height} image")
    frame = _stored_frame(image.file.name, image.sha256)
    stored, rescaled = frame.value_at(x, y)
    return PixelProbe(x=x, y=y, stored=stored, rescaled=rescaled, rescale_type=frame.rescale_type)
