"""Test data writers: real PNG/JPEG bytes made with Pillow (DICOM: tests/clinical/dicom_factory.py)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage


def chest_png(*, size: tuple[int, int] = (96, 80), seed: int = 0, fmt: str = "PNG") -> bytes:
    """A grey chest-like phantom; different seeds give different bytes (and SHA-256)."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    img = 40 + 20 * rng.random((h, w))
    for cx in (0.33, 0.67):
        lung = ((xx - cx * w) / (0.15 * w)) ** 2 + ((yy - 0.5 * h) / (0.3 * h)) ** 2 < 1
        img[lung] += 80
    buf = io.BytesIO()
    PILImage.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()
