"""Decoding, normalising and hashing of images for the dataset store.

Every image that enters a dataset version goes through :func:`decode_gray`, so training sees
one format (uint8, HxW, grayscale) whatever the source wrote (8/16-bit PNG, RGB JPEG, EXIF
rotated photos of films). Bad files raise :class:`ImageDecodeError` with a reason a person can
act on, which the importer records instead of crashing a long import.

:func:`upright` and :func:`gray8` are THE raster rules, shared with serving: the clinical
ingest (``clinical.ingest.raster``, through ``mlcore.services.imaging``) decodes uploaded PNG
and JPEG files with the same two functions, so a training image and the same file uploaded
give the same pixels, hence the same model input (``mlcore.ml.transforms.model_input``):

* EXIF orientation is applied for every format (PNG can carry an eXIf chunk too); broken
  EXIF is ignored, since the pixels themselves decoded;
* 8-bit grayscale is taken as stored; RGB/RGBA/palette/CMYK become BT.601 luma (alpha is
  dropped, never composited), and a colour file whose channels are equal is that gray;
* 16-bit and float data, which carry no window, are stretched linearly from their lowest to
  their highest value onto 0..255 (:func:`stretch_to_uint8`) -- a 12-bit radiograph in a
  16-bit PNG would otherwise be nearly black. DICOM without a window follows the same rule
  for data wider than 8 bits (``clinical.ingest.dicom_pixels``).
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A 3000x3000 CXR is 9 MP and a large 16-bit mammogram about 20 MP; far above that is a
# decompression bomb or not a scan.
DEFAULT_MAX_PIXELS = 50_000_000
DHASH_SIZE = 16
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageDecodeError(ValueError):
    """The bytes are not a usable image; ``reason`` says why (shown in split reports)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _draft_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = max_side / max(width, height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


_EXIF_ERRORS = (OSError, SyntaxError, ValueError, EOFError, KeyError, IndexError, TypeError)
_COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


def linear_to_uint8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255 (clipping outside, rounding to nearest); a flat
    range maps to 0."""
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled = (arr.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def stretch_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Data without a window (16-bit, float): its own lowest..highest value onto 0..255."""
    a = np.asarray(arr)
    lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageDecodeError("image has non-finite pixel values")
    return linear_to_uint8(a, lo, hi)


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos of films); broken EXIF is ignored."""
    try:
        return ImageOps.exif_transpose(img)
    except _EXIF_ERRORS:
        return img


def gray8(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image -> uint8 H x W grayscale by the rules in the module docstring.
    ``ValueError`` for a mode that is not an image of a scan (e.g. multi-band float)."""
    mode = img.mode
    if mode in _WIDE_MODES:
        return stretch_to_uint8(np.asarray(img))
    if mode == "L":
        return np.array(img, dtype=np.uint8)
    if mode in ("1", "LA", "La"):
        return np.array(img.convert("L"), dtype=np.uint8)
    if mode in _COLOUR_MODES:
        rgb = img.convert("RGBA").convert("RGB") if mode in ("P", "PA") else img.convert("RGB")
        a = np.asarray(rgb)
        if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
            return np.ascontiguousarray(a[..., 0])
        return np.array(rgb.convert("L"), dtype=np.uint8)  # ITU-R 601-2 luma
    raise ValueError(f"pixel mode {mode!r} is not supported")


def _pil(arr: np.ndarray) -> Image.Image:
    """uint8 HxW -> Pillow mode ``L`` (inferred from the dtype)."""
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def downscale(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longest side is ``max_side`` (aspect kept); never upscales."""
    h, w = arr.shape
    if max(h, w) <= max_side:
        return arr
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = _pil(arr).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(out, dtype=np.uint8)


def decode_gray(
    source: bytes | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    min_side: int = 1,
) -> np.ndarray:
    """Decode a file or bytes into a uint8 HxW array; :class:`ImageDecodeError` if unusable."""
    try:
        data = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except OSError as exc:
        raise ImageDecodeError(f"unreadable file: {exc.strerror or exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"{width}x{height} is {width * height} pixels, above max_pixels={max_pixels}"
                )
            if max_side and img.format == "JPEG":
                # let libjpeg decode at a reduced scale: much faster for large films
                img.draft("L", _draft_size(width, height, max_side))
            img.load()
            arr = gray8(upright(img))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image format (empty or not an image)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None
    if arr.ndim != 2:
        raise ImageDecodeError(f"expected a single-channel image, got shape {arr.shape}")
    if max_side:
        arr = downscale(arr, max_side)
    if min(arr.shape) < min_side:
        raise ImageDecodeError(
            f"too small: {arr.shape[1]}x{arr.shape[0]}, need at least {min_side} px per side"
        )
    return arr


def encode_png(arr: np.ndarray) -> bytes:
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError(f"encode_png expects uint8 HxW, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    _pil(arr).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def pixel_sha256(arr: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape: equal for re-encodings of one image."""
    h, w = arr.shape
    digest = hashlib.sha256(f"{h}x{w}:".encode())
    digest.update(np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def dhash_hex(arr: np.ndarray, *, size: int = DHASH_SIZE) -> str:
    """Difference hash: ``size`` x ``size`` bits of left<right brightness steps, as hex.

    It survives re-encoding, rescaling and brightness changes, which is what makes copies of
    one radiograph in several public collections findable.
    """
    small = _pil(arr).resize((size + 1, size), Image.Resampling.BOX)
    px = np.asarray(small, dtype=np.int16)
    bits = px[:, 1:] > px[:, :-1]
    return np.packbits(bits.reshape(-1)).tobytes().hex()


def hamming(a: str | int, b: str | int) -> int:
    ia = int(a, 16) if isinstance(a, str) else a
    ib = int(b, 16) if isinstance(b, str) else b
    return (ia ^ ib).bit_count()
