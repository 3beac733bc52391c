"""What served a study: the page behind the study page's "provenance" link."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clinical.access import access_study_by_uid
from clinical.selectors.provenance import study_provenance


@require_GET
def study_provenance_page(request: HttpRequest, uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, uid, request=request)
    may_see_shadow = request.user.has_perm("accounts.manage_models")
    return render(request, "clinical/provenance.html", {
        "study": study, "rows": study_provenance(study=study, include_shadow=may_see_shadow),
        "shows_shadow": may_see_shadow,
    })
