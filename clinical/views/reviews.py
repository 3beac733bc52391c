"""Writes from the study page: reviews and amendments, sign-off, triage retry, attributions.

Each view: access (404 for a study the user may not see), permission (403), service,
then the re-rendered partial. Service refusals come back as 400 (invalid input) or 403
(signed-off study) with the service's own message in the partial.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinical.access import access_study_by_uid
from clinical.forms import ReviewForm
from clinical.models import Prediction
from clinical.selectors.overlays import prediction_classes
from clinical.services.predictions import attribution_request, prediction_retry
from clinical.services.reviews import review_create, study_sign_off
from clinical.services.triage import ai_hidden
from clinical.views._common import error_messages, require_perm, study_and_image
from clinical.views.viewer import TEMPLATE, attribution_states, explain_target, study_context
from mlcore.services.inference import ATTRIBUTION_METHODS


def _panel(request: HttpRequest, study, image, partial: str, *, status: int = 200, **extra) -> HttpResponse:
    context = study_context(request, study, image_id=image.pk if image else None, **extra)
    if request.htmx:
        return render(request, f"{TEMPLATE}#{partial}", {**context, "oob_status": True}, status=status)
    if status >= 400:  # a plain form post: the whole page, with the reason
        return render(request, TEMPLATE, context, status=status)
    url = reverse("clinical:study", args=[study.uid])
    return redirect(f"{url}?image={image.pk}" if image else url)


@require_POST
def review_submit(request: HttpRequest, uid: str, image_id: int) -> HttpResponse:
    """A verdict on one image; ``amendment=1`` on a signed-off study (note required)."""
    study, image = study_and_image(request, uid, image_id)
    require_perm(request, "accounts.review_studies")
    form = ReviewForm(request.POST)
    if not form.is_valid():
        errors = [f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()]
        return _panel(request, study, image, "review_panel", status=400, form=form, errors=errors)
    data = form.cleaned_data
    try:
        review_create(
            image=image, verdict=data["verdict"], label=data["label"], note=data["note"],
            reader=request.user, amendment=data["amendment"], request=request,
        )
    except ValidationError as exc:
        return _panel(request, study, image, "review_panel", status=400, form=form,
                      errors=error_messages(exc))
    except PermissionDenied as exc:
        return _panel(request, study, image, "review_panel", status=403, form=form, errors=[str(exc)])
    hidden_before = ai_hidden(study)
    study.refresh_from_db()
    response = _panel(request, study, image, "review_panel")
    if hidden_before and not ai_hidden(study) and request.htmx:
        response["HX-Refresh"] = "true"  # the AI was just revealed: the whole page changes
    return response


@require_POST
def sign_off(request: HttpRequest, uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, uid, request=request, audit=False)
    require_perm(request, "accounts.sign_off_studies")
    image = study.images.filter(pk=_image_id(request)).first() or study.images.first()
    try:
        study = study_sign_off(study=study, user=request.user, request=request)
    except ValidationError as exc:
        return _panel(request, study, image, "review_panel", status=400, errors=error_messages(exc))
    if not request.htmx:
        messages.success(request, "Study signed off.")
    return _panel(request, study, image, "review_panel")


@require_POST
def retry(request: HttpRequest, uid: str, image_id: int) -> HttpResponse:
    """Run triage again after a failure (the panel then polls until it finishes)."""
    study, image = study_and_image(request, uid, image_id)
    require_perm(request, "accounts.review_studies")
    prediction_retry(image=image, actor=request.user, request=request)
    study.refresh_from_db()
    return _panel(request, study, image, "ai_panel")


def _explained_prediction(study, image) -> Prediction | HttpResponse:
    if ai_hidden(study):
        return HttpResponse("Blinded read: the AI is hidden until you save a verdict.", status=409)
    prediction = image.latest_prediction()
    if prediction is None or prediction.status != Prediction.Status.SUCCEEDED:
        return HttpResponse("There is no finished AI result to explain yet.", status=409)
    return prediction


def _requested_class(request: HttpRequest, prediction: Prediction) -> str:
    """``class`` from the query or form (absent: the top class); 404 for a class outside the
    prediction's scope, so a wrong class never silently explains another one."""
    requested = request.POST.get("class") or request.GET.get("class") or ""
    if requested and requested not in prediction_classes(prediction):
        raise Http404("No such class for this prediction")
    return explain_target(prediction, requested)


@require_http_methods(["GET", "POST"])
def attribution(request: HttpRequest, uid: str, image_id: int, method: str) -> HttpResponse:
    """POST requests a captum attribution; GET is the polled state of one method. ``class``
    picks the class explained (default: the top class)."""
    if method not in ATTRIBUTION_METHODS:
        raise Http404("No such attribution method")
    study, image = study_and_image(request, uid, image_id)
    prediction = _explained_prediction(study, image)
    if isinstance(prediction, HttpResponse):
        return prediction
    target = _requested_class(request, prediction)
    if request.method == "POST":
        prediction = attribution_request(prediction=prediction, method=method, actor=request.user,
                                         request=request, target=target)
    state = next(s for s in attribution_states(prediction, target) if s["method"] == method)
    return render(request, f"{TEMPLATE}#attribution", {"study": study, "image": image, "attribution": state})


@require_GET
def attributions(request: HttpRequest, uid: str, image_id: int) -> HttpResponse:
    """The attribution block of the AI panel for the ``class`` chosen in its class select."""
    study, image = study_and_image(request, uid, image_id)
    prediction = _explained_prediction(study, image)
    if isinstance(prediction, HttpResponse):
        return prediction
    target = _requested_class(request, prediction)
    return render(request, f"{TEMPLATE}#attributions", {
        "study": study, "image": image, "prediction": prediction,
        "attributions": attribution_states(prediction, target),
        "explain_class": target, "explain_classes": prediction_classes(prediction),
    })


def _image_id(request: HttpRequest) -> int | None:
    try:
        return int(request.POST.get("image") or request.GET.get("image") or 0) or None
    except ValueError:
        return None
