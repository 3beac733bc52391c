"""Studies for the view tests: ``study_row`` writes database rows only (no image files, no
model); ``upload_png`` goes through the upload URL for tests that open images or run the model.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from clinical.models import Image, Prediction, Study
from tests.clinical.factories import chest_png

_counter = itertools.count()


def study_row(
    *,
    status: str = Study.Status.AWAITING_REVIEW,
    priority: float = 0.2,
    top_class: str = "lung-normal",
    confidence: float = 0.8,
    out_of_scope: bool = False,
    modality: str = "DX",
    minutes_ago: float = 0,
    images: int = 1,
) -> Study:
    n = next(_counter)
    study = Study.objects.create(
        modality=modality, status=status, triage_priority=priority, top_class=top_class,
        out_of_scope=out_of_scope, scope=Study.Scope.CXR,
    )
    for i in range(images):
        sha = hashlib.sha256(f"row-{n}-{i}".encode()).hexdigest()
        image = Image.objects.create(
            study=study, file=f"images/{sha}.png", display_file=f"display/{sha}.png",
            original_name=f"img{n}-{i}.png", format=Image.Format.PNG, width=8, height=8,
            sha256=sha, size_bytes=100,
        )
        Prediction.objects.create(
            image=image, model_name="radviewer-triage", model_version="7",
            status=Prediction.Status.SUCCEEDED, top_class=top_class, confidence=confidence,
            probabilities={top_class: confidence}, out_of_scope=out_of_scope,
        )
    if minutes_ago:
        Study.objects.filter(pk=study.pk).update(received_at=timezone.now() - timedelta(minutes=minutes_ago))
        study.refresh_from_db()
    return study


def upload_png(client, *, seed: int = 0) -> Image:
    """Upload a phantom PNG through the upload URL; its prediction is queued, not run."""
    name = f"c{seed}.png"
    response = client.post(reverse("clinical:upload_file"), {"file": SimpleUploadedFile(name, chest_png(seed=seed))},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 201, response.content
    return Image.objects.get(original_name=name)
