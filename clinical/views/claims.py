"""The study page's reading claim (issue 14 item 9): heartbeat, take over, release.

Each answers with the claim banner partial. The heartbeat is sent by ``static/js/claims.js``
only while the reader is active on the page, so an abandoned tab lets its claim lapse.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from clinical.access import access_study_by_uid
from clinical.selectors.claims import ClaimState, study_claim_state
from clinical.services.claims import study_claim, study_claim_release, study_claim_take_over
from clinical.views._common import require_perm
from clinical.views.viewer import TEMPLATE, claim_context


def _banner(request: HttpRequest, study, claim: ClaimState, *, status: int = 200, error: str = "") -> HttpResponse:
    if not request.htmx:  # a plain form post: back to the page
        return redirect(reverse("clinical:study", args=[study.uid]))
    return render(
        request,
        f"{TEMPLATE}#claim_banner",
        {"study": study, **claim_context(claim), "claim_error": error},
        status=status,
    )


@require_POST
def claim_heartbeat(request: HttpRequest, uid: str) -> HttpResponse:
    """The reader is still active on the page: keep (or, if it became free, take) the claim."""
    study = access_study_by_uid(request.user, uid, request=request, audit=False)
    return _banner(request, study, study_claim(study=study, reader=request.user, request=request))


@require_POST
def claim_take_over(request: HttpRequest, uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, uid, request=request, audit=False)
    require_perm(request, "accounts.review_studies")
    try:
        claim = study_claim_take_over(study=study, reader=request.user, request=request)
    except PermissionDenied as exc:
        study.refresh_from_db()
        return _banner(request, study, study_claim_state(study=study, user=request.user), status=403, error=str(exc))
    return _banner(request, study, claim)


@require_POST
def claim_release(request: HttpRequest, uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, uid, request=request, audit=False)
    require_perm(request, "accounts.review_studies")
    return _banner(request, study, study_claim_release(study=study, reader=request.user, request=request))
