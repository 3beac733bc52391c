"""The JSON result of a study as integration clients see it (API responses and webhook bodies).

Pseudonymous throughout, except ``source_study`` and each image's ``source_ids``: the
sender's own DICOM identifiers (original Study/Series/SOP Instance UIDs, accession number),
re-identified from the protected mapping
through the audited selector so a PACS can match the result to its study. They are the
client's own data, sent by it, returned only to it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.urls import reverse

from clinical.ingest.deid import BURNED_IN_WARNING
from clinical.models import Image, Prediction, Review, Study
from clinical.selectors.phi import original_identifiers_read
from mlcore.selectors import class_display_name as display_name
from mlcore.selectors import urgent_class_keys

SOURCE_PURPOSE = "return results to source PACS"


def absolute(path: str, request: Any = None) -> str:
    if request is not None:
        return request.build_absolute_uri(path)
    return f"{settings.PUBLIC_BASE_URL}{path}"


PATIENT_FIELDS = ("patient_id", "patient_name", "issuer_of_patient_id", "patient_birth_date", "patient_sex")


def study_queryset(*, include_patient: bool = True):
    """A study with everything ``study_result`` reads, in four queries (study, images with
    their protected mapping row, predictions, reviews with readers) whatever the image count.

    ``include_patient=False`` leaves the source's patient module (encrypted) unread: only an
    SR filed back into the PACS carries it, and a status poll should not decrypt a name."""
    images = Image.objects.order_by("id").select_related("original_ids")
    if not include_patient:
        images = images.defer(*(f"original_ids__{name}" for name in PATIENT_FIELDS))
    return Study.objects.prefetch_related(
        Prefetch("images", queryset=images.prefetch_related(
            "predictions", Prefetch("reviews", queryset=Review.objects.select_related("reader")),
        ))
    )


def study_links(study: Study, *, request: Any = None) -> dict[str, str]:
    kw = {"uid": study.uid}
    return {
        "self": absolute(reverse("api:study-detail", kwargs=kw), request),
        "fhir": absolute(reverse("api:study-fhir", kwargs=kw), request),
        "sr": absolute(reverse("api:study-sr", kwargs=kw), request),
        "heatmap": absolute(reverse("api:study-heatmap", kwargs=kw), request),
        "feedback": absolute(reverse("api:study-feedback", kwargs=kw), request),
    }


def study_warnings(study: Study) -> list[str]:
    """What a reader or the sender must know before trusting the de-identified copy."""
    warnings = [study.scope_warning] if study.scope_warning else []
    if study.burned_in_annotation:
        warnings.append(BURNED_IN_WARNING)
    return warnings


WITHHELD_REASON = ("blinded read: the AI result is withheld from every reader and integration until a "
                   "reader saves a verdict (it measures automation bias); it appears then")


def ai_withheld(study: Study) -> bool:
    """A blinded read whose verdict is not saved yet (as clinical.services.triage.ai_hidden)."""
    return bool(study.blinded_read and study.ai_revealed_at is None)


def study_summary(study: Study, *, request: Any = None) -> dict[str, Any]:
    """The short form: list items and the 202 acknowledgement. A blinded read says so
    (``blinded_read``, ``ai_withheld``) and carries no AI figure until the verdict."""
    if ai_withheld(study):
        return {
            "uid": study.uid, "status": study.status, "accession_number": study.accession_number,
            "priority_hint": study.priority_hint, "received_at": study.received_at.isoformat(),
            "top_class": "", "top_class_display": "", "triage_priority": None, "out_of_scope": None,
            # The burned-in warning comes from the header; a scope warning may be the AI's own.
            "burned_in_annotation": study.burned_in_annotation,
            "warnings": [BURNED_IN_WARNING] if study.burned_in_annotation else [],
            "blinded_read": True, "ai_withheld": True, "ai_withheld_reason": WITHHELD_REASON,
            "links": study_links(study, request=request),
        }
    return {
        "uid": study.uid,
        "status": study.status,
        "accession_number": study.accession_number,
        "priority_hint": study.priority_hint,
        "received_at": study.received_at.isoformat(),
        "top_class": study.top_class,
        "top_class_display": display_name(study.top_class) if study.top_class else "",
        "triage_priority": study.triage_priority,
        "out_of_scope": study.out_of_scope,
        "burned_in_annotation": study.burned_in_annotation,
        "warnings": study_warnings(study),
        "blinded_read": study.blinded_read,
        "ai_withheld": False,
        "ai_withheld_reason": "",
        "links": study_links(study, request=request),
    }


def prediction_repr(prediction: Prediction | None) -> dict[str, Any] | None:
    if prediction is None:
        return None
    done = prediction.status == Prediction.Status.SUCCEEDED
    findings = [
        {"key": key, "display_name": display_name(key), "probability": float(p), "urgent": key in urgent_class_keys()}
        for key, p in prediction.sorted_probabilities()
    ] if done else []
    return {
        "status": prediction.status,
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
        "arm": prediction.arm,
        "top_class": prediction.top_class if done else "",
        "top_class_display": display_name(prediction.top_class) if done and prediction.top_class else "",
        "confidence": prediction.confidence if done else None,
        "out_of_scope": prediction.out_of_scope,
        "out_of_scope_reason": prediction.ood_reason if done else "",
        "ood_score": prediction.ood_score if done else None,
        "ood_percentile": prediction.ood_percentile if done else None,
        "ood_threshold_percentile": prediction.ood_threshold_percentile if done else None,
        "scope": prediction.scope if done else "",
        "scope_source": prediction.scope_source if done else "",
        "probabilities": {k: float(v) for k, v in prediction.probabilities.items()} if done else {},
        "findings": findings,
        "failure_reason": prediction.failure_reason,
        "completed_at": prediction.completed_at.isoformat() if prediction.completed_at else None,
    }


def withheld_repr() -> dict[str, Any]:
    """A prediction of a blinded read before the verdict: the same keys, nothing of the AI."""
    return {
        "status": "withheld", "withheld_reason": WITHHELD_REASON, "model_name": "", "model_version": "", "arm": "",
        "top_class": "", "top_class_display": "", "confidence": None, "out_of_scope": False,
        "out_of_scope_reason": "", "ood_score": None, "ood_percentile": None, "ood_threshold_percentile": None,
        "scope": "", "scope_source": "", "probabilities": {}, "findings": [], "failure_reason": "",
        "completed_at": None,
    }


def reading_impression(review: dict[str, Any]) -> str:
    """A reading's structured impression, as reports carry it: the confirmed class's display
    name, then the reader's free text ("Tuberculosis. Upper-lobe cavity."); "" for neither."""
    parts = [review.get("label_display") or "", (review.get("impression") or "").strip()]
    return ". ".join(p.rstrip(".") if i == 0 else p for i, p in enumerate(parts) if p)


def review_repr(review: Review) -> dict[str, Any]:
    reader = review.reader.get_username() if review.reader else review.source_label
    return {
        "verdict": review.verdict,
        "label": review.label,
        "label_display": display_name(review.label) if review.label else "",
        "note": review.note,
        "impression": review.impression,
        "source": review.source,
        "reader": reader,
        "amendment": review.amendment,
        "blinded": review.blinded,
        "created_at": review.created_at.isoformat(),
    }


def _source_ids(image: Image, *, client: Any, request: Any, include_patient: bool = False) -> dict[str, Any] | None:
    if image.format != Image.Format.DICOM:
        return None
    # UIDs and accession number only (the sender's own): coalesced like other reads; the
    # patient module for an SR is audited on every export.
    window = 0 if include_patient else settings.AUDIT_READ_WINDOW_S
    ids = original_identifiers_read(image=image, api_client=client, purpose=SOURCE_PURPOSE, request=request,
                                    coalesce_s=window, preloaded=True)
    if ids is None:
        return None
    out: dict[str, Any] = {
        "study_instance_uid": ids.study_instance_uid,
        "series_instance_uid": ids.series_instance_uid,
        "sop_instance_uid": ids.sop_instance_uid,
        "sop_class_uid": ids.sop_class_uid,
        "accession_number": ids.accession_number,
    }
    if include_patient:  # only for a DICOM object filed back into the source PACS (the SR)
        out["patient"] = {
            "PatientID": ids.patient_id, "PatientName": ids.patient_name,
            "IssuerOfPatientID": ids.issuer_of_patient_id, "PatientBirthDate": ids.patient_birth_date,
            "PatientSex": ids.patient_sex,
        }
    return out


def study_result(study: Study, *, client: Any, request: Any = None, include_patient: bool = False) -> dict[str, Any]:
    """The full result: every image with its latest (non-shadow) prediction and its readings.

    ``include_patient`` adds the source's patient module to ``source_ids`` (for the SR only).
    """
    images = []
    source_study = None
    for image in Image.number_in_study(list(study.images.all())):  # prefetched in arrival order
        source = _source_ids(image, client=client, request=request, include_patient=include_patient)
        if source and source_study is None:
            source_study = {"study_instance_uid": source["study_instance_uid"],
                            "accession_number": source["accession_number"]}
        withheld = ai_withheld(study)
        prediction = image.latest_prediction()
        reviews = sorted(image.reviews.all(), key=lambda r: (r.created_at, r.pk), reverse=True)
        heatmap = None
        if prediction is not None and prediction.heatmap_png and not withheld:
            heatmap = absolute(reverse("api:image-heatmap", kwargs={"uid": study.uid, "image_id": image.pk}),
                               request)
        images.append({
            "id": image.pk,
            "name": image.display_name,
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "source_ids": source,
            "prediction": withheld_repr() if withheld and prediction is not None else prediction_repr(prediction),
            # A blinded reading's verdict says whether it matched the AI: not before the reveal.
            "reviews": [{**review_repr(r), "verdict": "blinded_reading"} if withheld and r.blinded else review_repr(r)
                        for r in reviews],
            "links": {"heatmap": heatmap},
        })
    return {
        **study_summary(study, request=request),
        "submitted_via": study.source,
        "modality": study.modality,
        "scope": study.scope,
        "scope_source": study.scope_source,
        "scope_warning": study.scope_warning,
        "signed_off_at": study.signed_off_at.isoformat() if study.signed_off_at else None,
        "source_study": source_study,
        "images": images,
    }
