"""The study page (canvas viewer, AI panel, review panel) and its polled status partial."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from clinical.access import access_study_by_uid
from clinical.forms import CLASS_CHOICES, ReviewForm
from clinical.ingest.deid import BURNED_IN_WARNING
from clinical.models import Image, Prediction, Study
from clinical.selectors.claims import ClaimState, claim_heartbeat_seconds
from clinical.selectors.overlays import attribution_key, heatmap_method, prediction_classes
from clinical.selectors.predictions import prediction_is_stuck
from clinical.selectors.priors import study_priors
from clinical.selectors.reviews import agree_refusal, reading_classes, undoable_review
from clinical.selectors.studies import study_image
from clinical.selectors.worklist import worklist_next_uid, worklist_position
from clinical.services.claims import study_claim
from clinical.services.triage import ai_hidden
from mlcore.selectors import class_keys, class_scope, synthetic_versions
from mlcore.services.inference import ATTRIBUTION_METHODS

TEMPLATE = "clinical/study.html"
RUNNING = (Prediction.Status.QUEUED, Prediction.Status.RUNNING)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


SCOPE_LABELS = {"cxr": "Chest X-ray classes", "oct": "Retinal OCT classes"}


def probability_groups(prediction: Prediction | None) -> list[tuple[str, list[tuple[str, float]]]]:
    """The prediction's probabilities grouped by scope (chest X-ray, retinal OCT), each
    group sorted. A decided scope has one group; an undecided one shows both, unranked
    against each other, because no class was chosen."""
    if prediction is None or not prediction.probabilities:
        return []
    groups: dict[str, list[tuple[str, float]]] = {}
    for key, p in prediction.sorted_probabilities():
        groups.setdefault(class_scope(key) if key in class_keys() else "other", []).append((key, p))
    return [(SCOPE_LABELS.get(scope, "Other"), rows) for scope, rows in groups.items()]


def ood_statement(prediction: Prediction | None) -> str:
    """How unusual the image is, in words: "more unusual than 42 % of the validation images
    the model was checked on (it flags above 99 %)"; "" for models without that scale."""
    if prediction is None or prediction.ood_percentile is None:
        return ""
    pct, limit = prediction.ood_percentile, prediction.ood_threshold_percentile
    share = "all" if pct >= 99.95 else (f"{pct:.1f} %" if pct >= 99 else f"{pct:.0f} %")
    where = f" (the model flags images above {limit:.0f} %)" if limit is not None else ""
    return f"more unusual than {share} of the validation images the model was checked on{where}"


def attribution_states(prediction: Prediction | None, target: str = "") -> list[dict[str, Any]]:
    """Each attribution method's state for class ``target`` (default: the top class); the
    ``source`` is the viewer's overlay key (the method alone for the top class)."""
    if prediction is None or prediction.status != Prediction.Status.SUCCEEDED:
        return []
    target = target or prediction.top_class
    states = []
    for method, label in ATTRIBUTION_METHODS.items():
        key = attribution_key(method, target, prediction.top_class)
        states.append({"method": method, "label": label, **prediction.attributions.get(key, {}),
                       "source": key, "target": target, "top": target == prediction.top_class})
    return states


def explain_target(prediction: Prediction | None, requested: str | None) -> str:
    """The class the attributions are shown for: ``requested`` when it is one of the
    prediction's classes, else the top class ("" when there is none)."""
    if prediction is None:
        return ""
    return requested if requested and requested in prediction_classes(prediction) else prediction.top_class


def study_context(
    request: HttpRequest, study: Study, *, image_id: int | None = None, form: ReviewForm | None = None,
    errors: list[str] | None = None, undone: bool = False,
) -> dict[str, Any]:
    """Everything the study page and its partials show, from three queries (study rows,
    predictions, reviews with readers), whatever the number of images."""
    images: list[Image] = Image.number_in_study(
        list(study.images.order_by("id").prefetch_related("predictions", "reviews__reader")))
    # The study row was read before its predictions; a result committed in between would show
    # as done while the status badge still said "running" (and polling stops). The worker
    # commits the prediction and the study status together, so reading the study again
    # *after* the predictions gives a status at least as new as what the panel shows.
    study.refresh_from_db(fields=["status", "triage_priority", "top_class", "out_of_scope",
                                  "signed_off_at", "signed_off_by", "blinded_read", "ai_revealed_at",
                                  "scope", "scope_source", "modality"])
    active = next((img for img in images if img.pk == image_id), images[0] if images else None)
    hidden = ai_hidden(study)
    # A blinded read: nothing of the AI reaches the page (or its partials) until the verdict.
    prediction = None if hidden else (active.latest_prediction() if active else None)
    probabilities = prediction.sorted_probabilities() if prediction and prediction.probabilities else []
    synthetic = bool(prediction and prediction.model_version and prediction.model_version in
                     synthetic_versions(name=prediction.model_name))
    user = request.user
    unreviewed = [img for img in images if img.latest_review() is None]
    signed_off = study.is_signed_off
    reviews = sorted(active.reviews.all(), key=lambda r: (r.created_at, r.pk), reverse=True) if active else []
    # The reading form's numbered classes: the scope's first (a blinded read does not give away
    # a scope only the AI inferred).
    shown_scope = "" if hidden and study.scope_source == "model" else study.scope
    presets = preset_set(study, hidden=hidden)
    return {
        "study": study,
        "burned_in_warning": BURNED_IN_WARNING,
        "images": images,
        "image": active,
        "prediction": prediction,
        "ai_hidden": hidden,
        "running": not hidden and active is not None and (prediction is None or prediction.status in RUNNING),
        "stuck": prediction_is_stuck(prediction),
        "probabilities": probabilities,
        "probability_groups": probability_groups(prediction),
        "ood_statement": ood_statement(prediction),
        "model_synthetic": synthetic,
        "attributions": attribution_states(prediction, explain_target(prediction, request.GET.get("class"))),
        "explain_class": explain_target(prediction, request.GET.get("class")),
        "explain_classes": prediction_classes(prediction),
        "heatmap_method": heatmap_method(prediction) if prediction and prediction.heatmap_png else None,
        "reviews": reviews,
        "reading_classes": reading_classes(shown_scope),
        "agree_refusal": agree_refusal(prediction, hidden=hidden),
        "undoable": undoable_review(reviews, study=study, user=user) if active else None,
        "undone": undone,
        "form": form or ReviewForm(),
        "errors": errors or [],
        "class_choices": CLASS_CHOICES,
        "signed_off": signed_off,
        "unreviewed": unreviewed,
        "can_review": user.has_perm("accounts.review_studies"),
        "can_sign_off": user.has_perm("accounts.sign_off_studies") and not signed_off and not unreviewed,
        "sign_off_perm": user.has_perm("accounts.sign_off_studies"),
        "preset_set": presets,
        "window_presets": WINDOW_PRESETS[presets],
    }


# Window presets per scope (the buttons; their values are in static/js/viewer.js). Chest
# presets stretch dark / middle / bright ranges of a radiograph; an OCT B-scan has no such
# tissue classes, only more or less contrast on the retinal layers.
WINDOW_PRESETS = {
    "cxr": [("default", "Default"), ("lung", "Lung"), ("soft", "Soft tissue"), ("bone", "Bone")],
    "oct": [("default", "Default"), ("high", "High contrast"), ("low", "Low contrast")],
}
OCT_MODALITIES = {"OPT", "OCT"}


def preset_set(study: Study, *, hidden: bool) -> str:
    """Which presets the viewer offers: "oct" for a retinal OCT, else "cxr". A scope the model
    inferred is AI output, so a blinded read goes by the DICOM modality alone."""
    if study.scope == Study.Scope.OCT and not (hidden and study.scope_source == Study.ScopeSource.MODEL):
        return "oct"
    return "oct" if study.modality.upper() in OCT_MODALITIES else "cxr"


def priors_context(study: Study, *, hidden: bool) -> list[dict[str, Any]]:
    """The priors list: no AI of a prior on a blinded read (nor of a prior still blinded), and
    no model-inferred scope either (it is AI output too)."""
    rows = []
    for prior in study_priors(study=study):
        ai_shown = not hidden and not ai_hidden(prior.study)
        rows.append({
            "study": prior.study,
            "image_count": prior.image_count,
            "reading": prior.reading,
            "ai_top_class": prior.ai_top_class if ai_shown else "",
            "scope_shown": ai_shown or prior.study.scope_source != Study.ScopeSource.MODEL,
        })
    return rows


def next_study_display_url(study: Study) -> str:
    """The display image URL of the next study's first image (prefetched by the page, so
    ``n`` finds it in the browser cache); "" at the end of the worklist. The setting
    ``VIEWER_PREFETCH_NEXT_STUDY`` (default on) turns it off, for benchmarks/next_study.py."""
    if not getattr(settings, "VIEWER_PREFETCH_NEXT_STUDY", True):
        return ""
    next_uid = worklist_next_uid(after_uid=study.uid)
    nxt = Study.objects.filter(uid=next_uid).first() if next_uid else None
    image = study_image(study=nxt) if nxt else None
    return reverse("clinical:image_display", args=[nxt.uid, image.pk]) if image else ""


def claim_context(claim: ClaimState) -> dict[str, Any]:
    """The claim banner's context (issue 14 item 9)."""
    return {"claim": claim, "claim_heartbeat_s": claim_heartbeat_seconds()}


@require_GET
def study_page(request: HttpRequest, uid: str) -> HttpResponse:
    """The viewer. Opening it is a view of the study: audited by the access function."""
    study = access_study_by_uid(request.user, uid, request=request)
    claim = study_claim(study=study, reader=request.user, request=request)  # opening it for reading claims it
    context = study_context(request, study, image_id=_int_or_none(request.GET.get("image")))
    context.update(priors=priors_context(study, hidden=context["ai_hidden"]),
                   prefetch_url=next_study_display_url(study),
                   worklist_position=worklist_position(study=study))  # "case n of m"
    return render(request, TEMPLATE, {**context, **claim_context(claim)})


@require_GET
def study_status(request: HttpRequest, uid: str) -> HttpResponse:
    """The AI panel of one image, polled every second while triage runs.

    The fragment carries its own ``hx-trigger="every 1s"`` only while the prediction is
    queued or running, so polling stops by itself once the result (or failure) is shown.
    Polls are not audited (the page view that started them was).
    """
    study = access_study_by_uid(request.user, uid, request=request, audit=False)
    context = study_context(request, study, image_id=_int_or_none(request.GET.get("image")))
    return render(request, f"{TEMPLATE}#ai_panel", {**context, "oob_status": True})


@require_GET
def study_next(request: HttpRequest, uid: str) -> HttpResponse:
    """Go to the study after this one in worklist order (keyboard shortcut ``n``)."""
    access_study_by_uid(request.user, uid, request=request, audit=False)
    next_uid = worklist_next_uid(after_uid=uid, reader_id=request.user.pk)  # skips others' claims
    if next_uid is None:
        messages.info(request, "That was the last study on the worklist.")
        return redirect("clinical:worklist")
    return redirect(reverse("clinical:study", args=[next_uid]))
