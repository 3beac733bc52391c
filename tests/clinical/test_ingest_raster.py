"""PNG/JPEG decoding: grayscale output, bombs refused before decoding, truncation refused."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from clinical.ingest import IngestError, decode_image

MAX_PIXELS = 50_000_000


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _gradient(width: int = 48, height: int = 32) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side zeros: ~110 kB on disk, 900 Mpx when decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    rows_per_chunk = 1000
    idat = b"".join(packer.compress(row * rows_per_chunk) for _ in range(side // rows_per_chunk))
    idat += packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_grayscale_png_round_trips_exactly() -> None:
    pixels = _gradient()
    decoded = decode_image(_encode(Image.fromarray(pixels), "PNG"), max_pixels=MAX_PIXELS)
    assert decoded.format == "png"
    assert (decoded.width, decoded.height) == (48, 32)
    assert decoded.pixels.dtype == np.uint8
    assert np.array_equal(decoded.pixels, pixels)
    assert decoded.photometric == "MONOCHROME2"
    assert decoded.dicom is None and decoded.window is None


def test_sixteen_bit_png_keeps_raw_values_and_stretches_for_display() -> None:
    raw = (np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 2 + 1000).astype(np.uint16)
    decoded = decode_image(_encode(Image.fromarray(raw), "PNG"), max_pixels=MAX_PIXELS)
    assert decoded.bits == 16
    assert decoded.pixels_raw.dtype == np.uint16
    assert np.array_equal(decoded.pixels_raw, raw)
    assert decoded.pixels.min() == 0 and decoded.pixels.max() == 255


def test_colour_jpeg_becomes_luma_and_gray_rgb_collapses_to_one_channel() -> None:
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red -> luma 0.299 * 200 ~= 60
    decoded = decode_image(_encode(Image.fromarray(rgb), "JPEG", quality=95), max_pixels=MAX_PIXELS)
    assert decoded.format == "jpeg" and decoded.photometric == "RGB"
    assert decoded.pixels.shape == (32, 48)
    assert abs(float(decoded.pixels.mean()) - 60) < 6

    gray_as_rgb = np.repeat(_gradient()[..., None], 3, axis=2)
    decoded = decode_image(_encode(Image.fromarray(gray_as_rgb), "PNG"), max_pixels=MAX_PIXELS)
    assert decoded.photometric == "MONOCHROME2"
    assert decoded.pixels_raw.shape == (32, 48)


def test_truncated_png_is_corrupt_not_half_an_image() -> None:
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), "PNG")
    with pytest.raises(IngestError) as exc:
        decode_image(data[: len(data) // 2], max_pixels=MAX_PIXELS)
    assert exc.value.code == "corrupt_image"
    assert exc.value.http_status == 422
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg_is_corrupt() -> None:
    noisy = np.random.default_rng(1).integers(0, 255, (64, 64), np.uint8)
    data = _encode(Image.fromarray(noisy), "JPEG", quality=90)
    with pytest.raises(IngestError) as exc:
        decode_image(data[: len(data) // 2], max_pixels=MAX_PIXELS)
    assert exc.value.code == "corrupt_image"


def test_decompression_bomb_png_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _bomb_png()
    assert len(bomb) < 200_000

    def no_load(self: object) -> None:
        raise AssertionError("the bomb must be refused before any pixel is decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    tracemalloc.start()
    try:
        with pytest.raises(IngestError) as exc:
            decode_image(bomb, max_pixels=MAX_PIXELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.code == "too_many_pixels"
    assert "30000x30000" in exc.value.message
    assert "50,000,000" in exc.value.message
    assert exc.value.details == {"width": 30000, "height": 30000, "max_pixels": 50_000_000}
    assert peak < 20_000_000  # decoding would need ~900 MB


def test_jpeg_header_declaring_huge_frame_is_refused_before_decoding() -> None:
    small = _encode(Image.fromarray(_gradient()), "JPEG")
    sof = small.index(b"\xff\xc0")
    patched = small[: sof + 5] + struct.pack(">HH", 60000, 60000) + small[sof + 9 :]
    with pytest.raises(IngestError) as exc:
        decode_image(patched, max_pixels=MAX_PIXELS)
    assert exc.value.code == "too_many_pixels"
    assert "60000x60000" in exc.value.message


def test_pixel_limit_is_the_callers() -> None:
    data = _encode(Image.fromarray(_gradient(48, 32)), "PNG")
    with pytest.raises(IngestError) as exc:
        decode_image(data, max_pixels=48 * 32 - 1)
    assert exc.value.code == "too_many_pixels"
    assert decode_image(data, max_pixels=48 * 32).width == 48
