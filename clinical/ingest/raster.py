"""Decode PNG and JPEG uploads with Pillow, refusing decompression bombs and truncated files.

Pillow's own bomb guard is process-global (``Image.MAX_IMAGE_PIXELS``) and only warns below
twice its limit, so this module never changes it: the image size is read from the header
(Pillow parses only the header on ``open``) and checked against the caller's ``max_pixels``
and Pillow's limit, whichever is lower, *before* ``load()`` allocates anything. Pillow's
``DecompressionBombError``/``Warning`` are still caught as a second line of defence.
``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False: a half-decoded chest film padded with
grey would look like a real image to the model.
"""

from __future__ import annotations

import io
import struct
from typing import Literal

import numpy as np
from PIL import Image, ImageFile

from clinical.ingest.errors import IngestError
from clinical.ingest.results import DecodedImage
from clinical.ingest.sniff import sniff
from mlcore.services.imaging import gray8, upright

_PILLOW_FORMAT = {"png": "PNG", "jpeg": "JPEG"}
# Errors Pillow raises for broken streams (truncation, bad CRC, bad Huffman tables...).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode a PNG or JPEG into display pixels (uint8, H x W grayscale) and raw pixels.

    Raises IngestError ``too_many_pixels`` (before decoding), ``corrupt_image`` or
    ``unsupported_image``; DICOM must go through ``ingest_dicom`` instead.
    """
    kind = sniff(data)
    if kind == "dicom":
        raise ValueError("decode_image handles PNG and JPEG; use ingest_dicom for DICOM")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone flipped the global; decoding now would accept truncated files silently.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; ingest requires False")
    limit = effective_pixel_limit(max_pixels)
    header_size = header_dimensions(data, kind)
    if header_size is not None:
        _check_pixels(*header_size, limit=limit)
    try:
        with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]]) as im:
            _check_pixels(*im.size, limit=limit)
            frame_count = int(getattr(im, "n_frames", 1))
            im.load()
            image = upright(im)
            if image is im:
                image = im.copy()  # outlive the ``with``
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = header_size or (0, 0)
        raise _too_many_pixels(*size, max_pixels=limit, detail=str(exc)) from exc
    except IngestError:
        raise
    except _DECODE_ERRORS as exc:
        raise IngestError(
            "corrupt_image",
            f"the {kind.upper()} file is corrupt or truncated and cannot be decoded ({exc})",
        ) from exc
    return _to_decoded(image, kind=kind, frame_count=frame_count)


def effective_pixel_limit(max_pixels: int) -> int:
    """The stricter of the caller's limit and Pillow's global bomb limit."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, int(pillow_limit)) if pillow_limit else max_pixels


def header_dimensions(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the PNG IHDR or JPEG SOFn header without decoding; None if absent."""
    if kind == "png":
        # Signature (8) + IHDR length (4) + b"IHDR" (4) + width (4) + height (4).
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        return None
    if kind == "jpeg":
        return _jpeg_dimensions(data)
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _check_pixels(width: int, height: int, *, limit: int) -> None:
    if width * height > limit:
        raise _too_many_pixels(width, height, max_pixels=limit)
    if width <= 0 or height <= 0:
        raise IngestError("corrupt_image", f"the image header declares a {width}x{height} image")


def _too_many_pixels(width: int, height: int, *, max_pixels: int, detail: str = "") -> IngestError:
    dims = f"{width}x{height} = {width * height:,} pixels" if width and height else "the image"
    suffix = f" ({detail})" if detail and not (width and height) else ""
    return IngestError(
        "too_many_pixels",
        f"{dims} exceeds the limit of {max_pixels:,} pixels; downscale the image before uploading{suffix}",
        details={"width": width, "height": height, "max_pixels": max_pixels},
    )


def _to_decoded(im: Image.Image, *, kind: Literal["png", "jpeg"], frame_count: int) -> DecodedImage:
    """The 8-bit picture comes from ``gray8``, the rule training decodes with; ``pixels_raw``
    keeps what the file stored (16-bit, float or colour) for the record."""
    mode = im.mode
    try:
        display = gray8(im)
    except ValueError:
        raise IngestError("unsupported_image", f"{kind.upper()} pixel mode {mode!r} is not supported") from None
    bits, photometric = 8, "MONOCHROME2"
    if mode.startswith("I;16") or mode == "I":
        raw = np.asarray(im)
        if raw.dtype != np.uint16 and raw.size and raw.min() >= 0 and raw.max() <= 0xFFFF:
            raw = raw.astype(np.uint16)
        bits = 16
    elif mode == "F":
        raw, bits = np.asarray(im), 32
    elif mode in ("L", "1", "LA", "La"):
        raw = display
    else:
        rgb = np.asarray(im.convert("RGB"))
        gray_as_colour = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        raw = display if gray_as_colour else rgb
        photometric = "MONOCHROME2" if gray_as_colour else "RGB"
    return DecodedImage.of(display, raw, format=kind, bits=bits, photometric=photometric, window=None,
                           modality=None, frame_count=frame_count, dicom=None)


def encode_png(pixels: np.ndarray) -> bytes:
    """8-bit grayscale PNG of ``pixels`` (H x W uint8) for the viewer."""
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 array, got {pixels.dtype} {pixels.shape}")
    buf = io.BytesIO()
    # Level 3: viewer PNGs are written on every upload; most of the size win, little CPU.
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
