"""Priors: the other studies of the same pseudonymous patient, for the study page's list and
the side-by-side compare page.

Studies are linked only through ``Study.patient_key`` (the de-identified patient pseudonym
set at ingest); a study without one has no priors. Readers never see the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch

from clinical.models import Image, Review, Study

PRIORS_LIMIT = 20


@dataclass(frozen=True)
class PriorStudy:
    """One prior as the study page lists it. ``ai_top_class`` is the prior's AI top class
    (blank when it has none); whether it may be shown is the caller's decision (blinded reads)."""

    study: Study
    image_count: int
    first_image_id: int | None
    reading: Review | None  # the latest reading over its images (the one that counts)
    ai_top_class: str


def study_priors(*, study: Study, limit: int = PRIORS_LIMIT) -> list[PriorStudy]:
    """Other studies with ``study``'s (non-empty) patient key, newest first: two queries
    (studies, then their images with reviews) whatever the number of priors."""
    if not study.patient_key:
        return []
    reviews = Prefetch("reviews", queryset=Review.objects.order_by("-created_at", "-id"))
    images = Prefetch("images", queryset=Image.objects.order_by("id").prefetch_related(reviews))
    qs = (
        Study.objects.filter(patient_key=study.patient_key)
        .exclude(pk=study.pk)
        .order_by("-received_at", "-id")
        .prefetch_related(images)[:limit]
    )
    out = []
    for prior in qs:
        imgs = list(prior.images.all())
        readings = [r for img in imgs for r in img.reviews.all()]
        reading = max(readings, key=lambda r: (r.created_at, r.pk), default=None)
        out.append(
            PriorStudy(
                study=prior,
                image_count=len(imgs),
                first_image_id=imgs[0].pk if imgs else None,
                reading=reading,
                ai_top_class="" if prior.out_of_scope else prior.top_class,
            )
        )
    return out


def study_prior(*, study: Study, prior_uid: str) -> Study | None:
    """``prior_uid`` when it is another study of ``study``'s patient, else None."""
    if not study.patient_key or prior_uid == study.uid:
        return None
    return Study.objects.filter(uid=prior_uid, patient_key=study.patient_key).first()
