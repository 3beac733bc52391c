"""Confirmed labels into the dataset store's ``feedback`` split, and review outcomes.

The dataset store is the boundary between clinical and training (DESIGN.md section 3):
training reads the store, never clinical tables.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data import open_store
from mlcore.models import ReviewOutcome

OUTCOME_ARMS = ("production", "canary", "shadow")


def feedback_sample_add(
    *, png_bytes: bytes, class_key: str, patient_key: str, lineage: dict[str, Any]
) -> dict[str, Any]:
    """Write one confirmed image into ``feedback`` with its lineage. Idempotent on pixels."""
    if class_key not in CLASS_KEYS:
        raise ValueError(f"unknown class key {class_key!r}; accepted: {', '.join(CLASS_KEYS)}")
    store = open_store(settings.DATASET_STORE_URI)
    row = store.add_sample(
        split="feedback",
        class_key=class_key,
        data=png_bytes,
        patient_key=patient_key or f"study:{lineage.get('study', 'unknown')}",
        source="radviewer-feedback",
        extra=lineage,
    )
    return {"path": row.path, "sha256": row.sha256, "split": row.split, "class_key": row.class_key}


def review_outcome_record(
    *,
    prediction_ref: str,
    model_name: str,
    model_version: str,
    predicted_class: str,
    confirmed_class: str,
    verdict: str,
    arm: str = "production",
    case_ref: str = "",
    blinded: bool = False,
) -> ReviewOutcome:
    """Record (or replace, for an amended review) the verdict on one prediction.

    ``arm``: the arm that made the prediction (production, canary or shadow); ``case_ref``:
    the same opaque id for every prediction on one case, which pairs a shadow outcome with
    the outcome of the prediction the reader saw.
    ``blinded``: the verdict was saved with the AI hidden (a blinded read's first verdict);
    it is kept in ``blinded_verdict``/``blinded_confirmed_class`` and a later, AI-shown
    amendment (``blinded=False``) updates the final reading without erasing it."""
    if arm not in OUTCOME_ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(OUTCOME_ARMS)}")
    extra = {"blinded": True, "blinded_verdict": verdict, "blinded_confirmed_class": confirmed_class} if blinded else {}
    with transaction.atomic():
        try:
            outcome, _ = ReviewOutcome.objects.update_or_create(
                prediction_ref=prediction_ref,
                defaults={
                    "model_name": model_name,
                    "model_version": model_version,
                    "predicted_class": predicted_class,
                    "confirmed_class": confirmed_class,
                    "verdict": verdict,
                    **extra,
                    "arm": arm,
                    "case_ref": case_ref,
                },
            )
        except IntegrityError:  # a concurrent writer won; the next call updates it
            outcome = ReviewOutcome.objects.get(prediction_ref=prediction_ref)
    return outcome


def review_outcomes_withdraw(*, prediction_refs: list[str]) -> int:
    """Delete the outcome rows of ``prediction_refs``: the only verdict on them was undone by
    its reader (``clinical.services.reviews.review_undo``), so no reading scores them now.
    Returns how many rows went."""
    deleted, _ = ReviewOutcome.objects.filter(prediction_ref__in=prediction_refs).delete()
    return deleted
