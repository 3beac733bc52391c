"""Side by side: a study and one of its priors (same pseudonymous patient), two canvases with
linked zoom, pan and window (``static/js/compare.js``).

Both studies go through the access function (each opening is an audited view of it); a
study of another patient, or one without a patient key, is a 404 like a missing one. The page
shows pixels only: no AI of either study, so a blinded read stays blinded.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clinical.access import access_study_by_uid
from clinical.models import Image, Study
from clinical.selectors.priors import study_prior
from clinical.selectors.studies import study_image
from clinical.services.triage import ai_hidden
from clinical.views.viewer import WINDOW_PRESETS, _int_or_none, preset_set


def _pane(study: Study, image_id: int | None, *, role: str) -> dict[str, Any]:
    image = study_image(study=study, image_id=image_id)
    if image_id is not None and image is None:
        raise Http404("No such image in this study")
    images = Image.number_in_study(list(study.images.order_by("id")))
    if image is not None:
        image = next(img for img in images if img.pk == image.pk)
    return {"study": study, "image": image, "images": images, "role": role}


@require_GET
def study_compare(request: HttpRequest, uid: str, prior_uid: str) -> HttpResponse:
    current = access_study_by_uid(request.user, uid, request=request, audit=False)
    if study_prior(study=current, prior_uid=prior_uid) is None:
        raise Http404("No such prior of this study")
    # Both checked before either is recorded as viewed.
    current = access_study_by_uid(request.user, uid, request=request)
    prior = access_study_by_uid(request.user, prior_uid, request=request)
    hidden = ai_hidden(current) or ai_hidden(prior)
    presets = preset_set(current, hidden=hidden)
    return render(
        request,
        "clinical/compare.html",
        {
            "study": current,
            "prior": prior,
            "panes": [
                _pane(current, _int_or_none(request.GET.get("image")), role="current"),
                _pane(prior, _int_or_none(request.GET.get("prior_image")), role="prior"),
            ],
            "ai_hidden": hidden,
            "preset_set": presets,
            "window_presets": WINDOW_PRESETS[presets],
        },
    )
