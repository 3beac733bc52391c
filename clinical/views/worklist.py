"""The worklist: open studies in triage order (or the signed-off "Done" list), filterable.

Fixed number of queries per page whatever its length: the selector's page query, the
paginator's count, one query for the shown studies' image counts and probabilities, and
one for their live reading claims ("being read by X").
"""

from __future__ import annotations

from dataclasses import replace

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinical.forms import WorklistFilterForm
from clinical.selectors.claims import active_claims
from clinical.selectors.worklist import worklist, worklist_row_details
from radviewer.lib.auth import permission_required_403

PAGE_SIZE = 50
TEMPLATE = "clinical/worklist.html"


@require_GET
@permission_required_403("accounts.view_worklist")
def worklist_page(request: HttpRequest) -> HttpResponse:
    form = WorklistFilterForm(request.GET)
    filters = replace(form.filters(), reader_id=request.user.pk)
    page = Paginator(worklist(filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    studies = list(page.object_list)
    details = worklist_row_details(study_ids=[s.pk for s in studies])
    claims = active_claims(study_ids=[s.pk for s in studies])  # "being read by X": one query
    for study in studies:
        row = details.get(study.pk)
        study.image_count = row.image_count if row else 0
        study.top_probability = row.top_probability if row else None
        study.final_readings = row.final_readings if row else ()
        study.active_claim = claims.get(study.pk)
    query = request.GET.copy()
    query.pop("page", None)
    tab_query = query.copy()
    tab_query.pop("done", None)
    tab_query.pop("status", None)
    tab_query.pop("mine", None)
    context = {
        "form": form,
        "page": page,
        "studies": studies,
        "done": filters.done,
        "mine": filters.mine,
        "now": timezone.now(),
        "query": query.urlencode(),
        "tab_query": tab_query.urlencode(),
    }
    template = f"{TEMPLATE}#worklist_table" if request.htmx else TEMPLATE
    return render(request, template, context)
