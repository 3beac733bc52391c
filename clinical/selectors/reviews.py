"""Reads for the reading form: may the reader agree in one step, and may a reading be undone.

The service (``clinical.services.reviews``) enforces the same rules server-side; the page
uses them to explain a refused ``a`` and to show the undo button only while it works.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from clinical.models import Prediction, Review, Study
from mlcore.selectors import class_catalogue


def agree_refusal(prediction: Prediction | None, *, hidden: bool) -> str:
    """Why "Agree with AI" is not possible for ``prediction`` ("" when it is): the AI result
    must be shown (not a blinded read), finished, in scope and name a class."""
    if hidden:
        return (
            "Blinded read: the AI is hidden until you save your own verdict; choose the class you see (1-9) and save."
        )
    if prediction is None:
        return "There is no AI result to agree with; choose a class (1-9) and save."
    if prediction.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING):
        return "The AI triage is still running; wait for its result or choose a class (1-9) and save."
    if prediction.status == Prediction.Status.FAILED:
        return "The AI triage failed, so there is nothing to agree with; choose a class (1-9) and save."
    if prediction.out_of_scope or not prediction.top_class:
        return "Out of scope: read it without the AI; choose a class (1-9) and save."
    return ""


def undo_window_seconds() -> int:
    return int(getattr(settings, "REVIEW_UNDO_SECONDS", 10))


def undo_refusal(review: Review, *, study: Study, user: Any, now: datetime | None = None) -> str:
    """Why ``review`` cannot be undone by ``user`` now ("" when it can)."""
    if study.status == Study.Status.SIGNED_OFF or review.amendment:
        return "the study is signed off; a reading can no longer be undone (amend it with a note instead)"
    if review.reader_id is None or review.reader_id != getattr(user, "pk", None):
        return "only the reader who saved a reading can undo it"
    if review.blinded and study.ai_revealed_at is not None:
        return (
            "this blinded reading revealed the AI, so it cannot be undone; "
            "save a new reading instead (the latest one counts)"
        )
    latest = max(study.images.get(pk=review.image_id).reviews.all(), key=lambda r: (r.created_at, r.pk))
    if latest.pk != review.pk:
        return "a later reading of this image exists; only the latest reading can be undone"
    if undo_seconds_left(review, now=now) <= 0:
        return f"the undo window ({undo_window_seconds()} s) has passed; save a new reading instead"
    return ""


def undo_seconds_left(review: Review, *, now: datetime | None = None) -> float:
    elapsed = ((now or timezone.now()) - review.created_at).total_seconds()
    return max(0.0, undo_window_seconds() - elapsed)


def undoable_review(reviews: list[Review], *, study: Study, user: Any) -> tuple[Review, int] | None:
    """The latest of ``reviews`` (one image's, newest first) with whole seconds left to undo
    it, when ``user`` may still undo it; else None."""
    if not reviews:
        return None
    latest = reviews[0]
    if (
        study.status == Study.Status.SIGNED_OFF
        or latest.amendment
        or latest.reader_id is None
        or latest.reader_id != getattr(user, "pk", None)
        or (latest.blinded and study.ai_revealed_at is not None)
    ):
        return None
    left = undo_seconds_left(latest)
    return (latest, max(1, round(left))) if left > 0 else None


def reading_classes(scope: str) -> list[dict[str, Any]]:
    """The classes of the reading form, numbered 1-9 for the hotkeys: the study's scope's
    classes first (chest X-ray or retinal OCT, in catalogue order), then the others."""
    catalogue = list(class_catalogue())
    decided = scope in {c.modality for c in catalogue}
    ordered = [c for c in catalogue if c.modality == scope] + [c for c in catalogue if c.modality != scope]
    return [
        {"n": n, "key": c.key, "name": c.display_name, "in_scope": not decided or c.modality == scope}
        for n, c in enumerate(ordered, start=1)
    ]
