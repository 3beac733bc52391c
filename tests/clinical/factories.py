"""Test data: factory-boy factories for the clinical rows, and real PNG/JPEG bytes made with
Pillow (DICOM: tests/clinical/dicom_factory.py). Rows made by the factories have no files
behind them; tests that open images or run the model upload through the URLs."""

from __future__ import annotations

import hashlib
import io

import factory
import numpy as np
from PIL import Image as PILImage

from clinical.models import Image, Prediction, Study


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


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    modality = "DX"
    status = Study.Status.AWAITING_REVIEW
    triage_priority = 0.2
    top_class = "lung-normal"
    out_of_scope = False
    scope = Study.Scope.CXR


class ImageFactory(factory.django.DjangoModelFactory):
    """An image row (no file behind it) with a unique SHA-256."""

    class Meta:
        model = Image

    study = factory.SubFactory(StudyFactory)
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"row-{n}".encode()).hexdigest())
    file = factory.LazyAttribute(lambda o: f"images/{o.sha256}.png")
    display_file = factory.LazyAttribute(lambda o: f"display/{o.sha256}.png")
    original_name = factory.Sequence(lambda n: f"img{n}.png")
    format = Image.Format.PNG
    width = 8
    height = 8
    size_bytes = 100


class PredictionFactory(factory.django.DjangoModelFactory):
    """A succeeded prediction of ``top_class`` with probability ``confidence``."""

    class Meta:
        model = Prediction

    image = factory.SubFactory(ImageFactory)
    model_name = "radviewer-triage"
    model_version = "7"
    status = Prediction.Status.SUCCEEDED
    top_class = "lung-normal"
    confidence = 0.8
    probabilities = factory.LazyAttribute(lambda o: {o.top_class: o.confidence})
    out_of_scope = False
