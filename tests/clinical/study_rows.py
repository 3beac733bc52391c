"""Studies for the view tests: ``study_row`` writes database rows only (no image files, no
model); ``upload_png`` goes through the upload URL for tests that open images or run the model.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from clinical.models import Image, Study
from tests.clinical.factories import ImageFactory, PredictionFactory, StudyFactory, chest_png


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
    """A study of ``images`` images, each with a succeeded prediction of ``top_class``."""
    study = StudyFactory(modality=modality, status=status, triage_priority=priority, top_class=top_class,
                         out_of_scope=out_of_scope)
    for _ in range(images):
        PredictionFactory(image=ImageFactory(study=study), top_class=top_class, confidence=confidence,
                          out_of_scope=out_of_scope)
    if minutes_ago:
        Study.objects.filter(pk=study.pk).update(received_at=timezone.now() - timedelta(minutes=minutes_ago))
        study.refresh_from_db()
    return study


COVID = {"lung-covid": 0.91, "lung-normal": 0.09}


def blinded_study(*, images: int = 1, minutes_ago: float = 0) -> Study:
    """A blinded read (AI hidden) whose images' AI says COVID-19 at 0.91, triaged as ingest would."""
    from clinical.services.predictions import _study_refresh

    study = StudyFactory(blinded_read=True, top_class="", triage_priority=0.5)
    for _ in range(images):
        PredictionFactory(image=ImageFactory(study=study), top_class="lung-covid", confidence=0.91,
                          probabilities=COVID)
    if minutes_ago:
        Study.objects.filter(pk=study.pk).update(received_at=timezone.now() - timedelta(minutes=minutes_ago))
    _study_refresh(study)
    study.refresh_from_db()
    return study


def upload_png(client, *, seed: int = 0) -> Image:
    """Upload a phantom PNG through the upload URL; its prediction is queued, not run."""
    name = f"c{seed}.png"
    response = client.post(reverse("clinical:upload_file"), {"file": SimpleUploadedFile(name, chest_png(seed=seed))},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 201, response.content
    return Image.objects.get(original_name=name)
