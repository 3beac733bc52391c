"""Reader verdicts, sign-off and audited amendments."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clinical.models import Image, Prediction, ResultDelivery, Review, Study
from clinical.services.claims import study_claim_end_at_sign_off
from clinical.services.display import image_display_bytes
from clinical.services.notifications import study_ready
from clinical.services.result_delivery import result_deliveries_schedule
from clinical.services.triage import ai_hidden, study_triage_fields
from mlcore.selectors import class_keys
from mlcore.services.feedback import feedback_sample_add, review_outcome_record
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

DECISIVE = (Review.Verdict.AGREE, Review.Verdict.CORRECTED)


def review_create(
    *,
    image: Image,
    verdict: str,
    label: str = "",
    note: str = "",
    reader: Any = None,
    source: str = Review.Source.READER,
    source_label: str = "",
    amendment: bool = False,
    request: Any = None,
) -> Review:
    """Record a verdict on ``image``'s latest prediction.

    ``agree`` confirms the AI's top class; ``corrected`` needs ``label`` (a class key);
    ``uncertain`` and ``non_diagnostic`` carry no label. A signed-off study only takes an
    amendment, which needs a note. Confirmed labels go to the dataset store on commit.

    A blinded read (AI hidden): the reader names a class without seeing the AI, so ``agree``
    is refused and a label equal to the AI's top class is recorded as agreement; the review
    and its outcome are marked blinded, and once every image has a verdict the AI is
    revealed (``ai_revealed_at``, audited) and the reader may amend.
    """
    if verdict not in Review.Verdict.values:
        raise ValidationError({"verdict": f"unknown verdict {verdict!r}; accepted: {', '.join(Review.Verdict.values)}"})
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=image.study_id)
        if study.status == Study.Status.SIGNED_OFF and not amendment:
            raise PermissionDenied("this study is signed off; changes need an amendment with a note")
        if amendment and not note.strip():
            raise ValidationError({"note": "an amendment needs a note saying why"})
        prediction = image.latest_prediction()
        blinded = ai_hidden(study)  # saved with the AI hidden
        if blinded and verdict == Review.Verdict.AGREE:
            raise ValidationError({"verdict": "blinded read: the AI is hidden until you save your own verdict; "
                                              "name the class you see (or uncertain / non-diagnostic)"})
        if verdict == Review.Verdict.AGREE:
            if prediction is None or prediction.status != Prediction.Status.SUCCEEDED:
                raise ValidationError({"verdict": "there is no AI result to agree with; choose a class"})
            label = prediction.top_class
        elif verdict == Review.Verdict.CORRECTED:
            if label not in class_keys():
                raise ValidationError({"label": f"unknown class key {label!r}; accepted: {', '.join(class_keys())}"})
        else:
            label = ""
        if (blinded and verdict == Review.Verdict.CORRECTED and prediction is not None
                and prediction.status == Prediction.Status.SUCCEEDED and label == prediction.top_class):
            verdict = Review.Verdict.AGREE  # the reader's own class is the AI's: agreement, unprompted
        review = Review.objects.create(
            image=image, prediction=prediction if prediction and prediction.status == "succeeded" else None,
            reader=reader if getattr(reader, "is_authenticated", False) else None,
            source=source, source_label=source_label, verdict=verdict, label=label,
            note=note.strip(), amendment=amendment, blinded=blinded,
        )
        audit_event_create(
            actor=reader, actor_label=source_label,
            action=AuditAction.REVIEW_AMENDED if amendment else AuditAction.REVIEW_CREATED,
            obj=review, request=request,
            details={"study": study.uid, "image": image.pk, "verdict": verdict, "label": label,
                     "model_version": review.prediction.model_version if review.prediction else None,
                     **({"blinded": True} if blinded else {})},
        )
        review_outcomes_record(review=review)
        if ai_hidden(study) and all(img.reviews.exists() for img in study.images.all()):
            _reveal(study, reader=reader, source_label=source_label, request=request)
        elif study.status in (Study.Status.AWAITING_REVIEW, Study.Status.REVIEWED):
            study.status = study_triage_fields(study).get("status", study.status)
            study.save(update_fields=["status"])
        if label:
            enqueue_on_commit("clinical.export_feedback", review_id=review.pk)  # by name: see enqueue_on_commit
        if amendment and study.status == Study.Status.SIGNED_OFF:  # the amended SR goes to the result destinations
            result_deliveries_schedule(study_id=study.pk, trigger=ResultDelivery.Trigger.AMENDED,
                                       event_key=f"review:{review.pk}")
    return review


def _reveal(study: Study, *, reader: Any, source_label: str, request: Any) -> None:
    """Every image of a blinded read has a verdict: show the AI (and give the study its
    AI-derived worklist fields back); integrations get the result on commit."""
    study.ai_revealed_at = timezone.now()
    fields = study_triage_fields(study) if study.status != Study.Status.SIGNED_OFF else {}
    if study.status == Study.Status.SIGNED_OFF:
        fields.pop("status", None)
    for key, value in fields.items():
        setattr(study, key, value)
    study.save(update_fields=["ai_revealed_at", *fields])
    audit_event_create(actor=reader, actor_label=source_label, action=AuditAction.STUDY_AI_REVEALED, obj=study,
                       request=request, details={"uid": study.uid})
    if study.status in (Study.Status.AWAITING_REVIEW, Study.Status.REVIEWED):
        study_id = study.pk
        transaction.on_commit(lambda: study_ready(study_id=study_id))  # the webhook now carries the AI


def _shadow_verdict(review: Review, predicted_class: str) -> str:
    """The reader's verdict as it scores a prediction the reader never saw: a confirmed
    class agrees or corrects by comparison; uncertain and non-diagnostic stay as they are."""
    if not review.label:
        return review.verdict
    return Review.Verdict.AGREE if predicted_class == review.label else Review.Verdict.CORRECTED


def review_outcomes_record(*, review: Review) -> None:
    """The model side's outcome rows for ``review`` (the image's latest verdict): one for the
    prediction shown (production or canary arm) and one for each finished shadow prediction
    of the image, all with the image as ``case_ref`` so shadow and production pair up. An
    amendment replaces them (one outcome per prediction)."""
    case_ref = str(review.image_id)
    shown = review.prediction
    if shown is not None:
        review_outcome_record(
            prediction_ref=f"clinical.prediction:{shown.pk}",
            model_name=shown.model_name, model_version=shown.model_version,
            predicted_class=shown.top_class, confirmed_class=review.label, verdict=review.verdict,
            arm=shown.arm, case_ref=case_ref, blinded=review.blinded,
        )
    shadows = Prediction.objects.filter(image_id=review.image_id, arm=Prediction.Arm.SHADOW,
                                        status=Prediction.Status.SUCCEEDED)
    for shadow in shadows:
        review_outcome_record(
            prediction_ref=f"clinical.prediction:{shadow.pk}",
            model_name=shadow.model_name, model_version=shadow.model_version,
            predicted_class=shadow.top_class, confirmed_class=review.label,
            verdict=_shadow_verdict(review, shadow.top_class), arm=Prediction.Arm.SHADOW, case_ref=case_ref,
        )


def review_export_feedback(*, review_id: int) -> dict | None:
    """Write a review's confirmed label with lineage into the store's ``feedback`` split.

    Skips reviews superseded by a later one (only the latest verdict counts).
    """
    review = Review.objects.select_related("image__study", "prediction", "reader").get(pk=review_id)
    latest = review.image.reviews.order_by("-created_at", "-id").first()
    if latest is None or latest.pk != review.pk or not review.label:
        return None
    png = image_display_bytes(review.image)
    study = review.image.study
    return feedback_sample_add(
        png_bytes=png,
        class_key=review.label,
        patient_key=study.patient_key or f"study:{study.uid}",
        lineage={
            "study": study.uid,
            "image_sha256": review.image.sha256,
            "reader": review.reader.get_username() if review.reader else review.source_label,
            "model_version": review.prediction.model_version if review.prediction else "",
            "model_name": review.prediction.model_name if review.prediction else "",
            "verdict": review.verdict,
            "time": review.created_at.isoformat(),
        },
    )


def study_sign_off(*, study: Study, user: Any, request: Any = None) -> Study:
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.status == Study.Status.SIGNED_OFF:
            return study
        images = list(study.images.prefetch_related("reviews"))
        unreviewed = [img.display_name for img in images if img.latest_review() is None]
        if not images or unreviewed:
            raise ValidationError(
                {"study": f"every image needs a review before sign-off; not yet reviewed: {', '.join(unreviewed)}"}
            )
        study.status = Study.Status.SIGNED_OFF
        study.signed_off_by = user
        study.signed_off_at = timezone.now()
        study.save(update_fields=["status", "signed_off_by", "signed_off_at"])
        study_claim_end_at_sign_off(study=study, user=user, request=request)  # nobody reads it any more
        audit_event_create(actor=user, action=AuditAction.STUDY_SIGNED_OFF, obj=study, request=request,
                           details={"uid": study.uid})
        # The final SR goes to the client's result destinations (queued when this commits).
        result_deliveries_schedule(study_id=study.pk, trigger=ResultDelivery.Trigger.SIGNED_OFF,
                                   event_key=f"signed-off:{study.signed_off_at.isoformat()}")
    return study
