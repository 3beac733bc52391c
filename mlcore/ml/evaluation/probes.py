"""Non-medical probe images for the out-of-scope figures: what a model must refuse.

Generated, never downloaded, from one seed, in four families a PACS or an upload page really
sees by mistake: photograph-like scenes (1/f "natural image" fields with objects and
edges), documents (pages of text lines, tables, a form), noise (uniform, Gaussian,
salt-and-pepper) and blank or near-blank frames (flat levels, gentle gradients, a faint
noise floor). Grey 8-bit, sizes and aspect ratios varied like real uploads.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

FAMILIES = ("photo", "document", "noise", "blank")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    w = int(rng.integers(160, 640))
    aspect = float(rng.choice([0.56, 0.75, 1.0, 1.33, 1.78]))
    return max(64, int(w / aspect)), w  # (h, w)


def _pink_field(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """Random field with a 1/f^beta spectrum (natural photographs have beta ~ 2)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    field = np.fft.irfft2(spectrum, s=(h, w))
    field -= field.min()
    return field / max(field.max(), 1e-9)


def photo(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng)
    base = _pink_field(rng, h, w, beta=float(rng.uniform(1.6, 2.4)))
    img = Image.fromarray((base * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 8))):  # objects: shapes with hard edges
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2 + 11)), y0 + int(rng.integers(10, h // 2 + 11))
        fill = int(rng.integers(0, 256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return np.asarray(img, dtype=np.uint8)


def document(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng)
    paper = int(rng.integers(215, 256))
    img = Image.new("L", (w, h), paper)
    draw = ImageDraw.Draw(img)
    ink = int(rng.integers(0, 80))
    y = int(rng.integers(8, 30))
    line_h = int(rng.integers(8, 18))
    while y < h - line_h:
        if rng.random() < 0.12:  # a table rule or a form box
            draw.rectangle((10, y, w - 10, y + line_h), outline=ink)
        else:
            x = int(rng.integers(8, 30))
            while x < w - 20:  # words as dark blocks of varying length
                word = int(rng.integers(6, 40))
                draw.rectangle((x, y + 2, min(w - 10, x + word), y + line_h - 2), fill=ink)
                x += word + int(rng.integers(4, 10))
        y += line_h + int(rng.integers(3, 9))
    return np.asarray(img, dtype=np.uint8)


def noise(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng)
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == 1:
        return np.clip(rng.normal(128, rng.uniform(20, 70), (h, w)), 0, 255).astype(np.uint8)
    img = np.full((h, w), int(rng.integers(0, 256)), dtype=np.uint8)
    mask = rng.random((h, w))
    img[mask < 0.05] = 0
    img[mask > 0.95] = 255
    return img


def blank(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng)
    level = float(rng.uniform(0, 255))
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.full((h, w), round(level), dtype=np.uint8)
    if kind == 1:  # a gentle gradient, as an empty detector frame
        ramp = np.linspace(0.0, float(rng.uniform(5, 40)), w)[None, :]
        return np.clip(level + ramp + np.zeros((h, 1)), 0, 255).astype(np.uint8)
    return np.clip(rng.normal(level, 1.0, (h, w)), 0, 255).astype(np.uint8)  # noise floor


_MAKERS = {"photo": photo, "document": document, "noise": noise, "blank": blank}


def probe_images(per_family: int = 50, *, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """``(family, uint8 H x W image)``, ``per_family`` of each family, reproducible."""
    rng = np.random.default_rng(seed)
    for family in FAMILIES:
        for _ in range(per_family):
            yield family, _MAKERS[family](rng)
