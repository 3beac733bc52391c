"""The worklist: open studies in triage order (or the signed-off "Done" list), filterable.

Fixed number of queries per page whatever its length: the selector's page query, the
paginator's count, one query for the shown studies' image counts and probabilities, one for
their final readings, one for their live reading claims ("being read by X"), and one
aggregate for the band counts at the top.

Every column header is a link that sorts by it (``?sort=<key>``, again for ``-<key>``);
``aria-sort`` says which column orders the table. No ``sort`` is the triage order.
"""

from __future__ import annotations

from dataclasses import replace

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinical.forms import WorklistFilterForm
from clinical.models import Study
from clinical.selectors.claims import active_claims
from clinical.selectors.worklist import worklist, worklist_band_counts, worklist_row_details
from radviewer.lib.auth import permission_required_403

PAGE_SIZE = 50
TEMPLATE = "clinical/worklist.html"

# (sort key, header); which columns each tab shows, in order.
OPEN_COLUMNS = (
    ("priority", "Priority"), ("received", "Waiting"), ("patient", "Patient"), ("age", "Age"),
    ("sex", "Sex"), ("modality", "Modality"), ("view", "Body part / view"), ("description", "Description"),
    ("source", "Source"), ("ai", "AI result"), ("images", "Images"), ("status", "Status"), ("study", "Study"),
)
DONE_COLUMNS = (
    ("priority", "Priority"), ("signed_off", "Signed off"), ("patient", "Patient"), ("age", "Age"),
    ("sex", "Sex"), ("modality", "Modality"), ("view", "Body part / view"), ("description", "Description"),
    ("source", "Source"), ("reading", "Final reading"), ("ai", "AI result"), ("images", "Images"),
    ("status", "Status"), ("study", "Study"),
)


def _headers(query, *, sort: str, done: bool) -> list[dict[str, str]]:
    """Each column's header: its sort link (toggles direction) and its ``aria-sort``."""
    current = sort or ("-signed_off" if done else "-priority")  # what the unsorted order is by
    out = []
    for key, label in DONE_COLUMNS if done else OPEN_COLUMNS:
        params = query.copy()
        params["sort"] = f"-{key}" if current == key else key
        aria = "ascending" if current == key else "descending" if current == f"-{key}" else "none"
        out.append({"key": key, "label": label, "url": f"?{params.urlencode()}", "aria_sort": aria})
    return out


def _label(study) -> None:
    """The new columns' text, worked out here rather than in the template (50 rows of template
    conditionals cost more than the queries): body part/view, and where the study came from."""
    ai_shown = not study.blinded_read or study.ai_revealed_at is not None
    parts = " ".join(p for p in (study.body_part, study.view_position) if p)
    inferred = False
    if not parts and study.scope != Study.Scope.UNKNOWN:
        if study.scope_source == Study.ScopeSource.HEADER:
            parts = study.get_scope_display()
        elif ai_shown:  # the AI's guess of the scope is hidden during a blinded read
            parts, inferred = study.get_scope_display(), True
    study.view_label, study.view_inferred = parts, inferred
    if study.api_client_id:
        kind = "DICOMweb" if study.source == Study.Source.DICOMWEB else "API"
        study.source_label = f"{kind} · {study.api_client.name}"
    elif study.source == Study.Source.DICOMWEB:
        study.source_label = "DICOMweb"
    else:
        study.source_label = f"Upload · {study.submitted_by.get_username()}" if study.submitted_by_id else "Upload"


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
        _label(study)
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
    tab_query.pop("sort", None)  # the tabs have different columns
    context = {
        "form": form,
        "page": page,
        "studies": studies,
        "done": filters.done,
        "mine": filters.mine,
        "now": timezone.now(),
        "query": query.urlencode(),
        "tab_query": tab_query.urlencode(),
        "headers": _headers(query, sort=filters.sort, done=filters.done),
        "columns": len(DONE_COLUMNS if filters.done else OPEN_COLUMNS),
        "counts": worklist_band_counts(),
        "search": filters.q,
    }
    template = f"{TEMPLATE}#worklist_table" if request.htmx else TEMPLATE
    return render(request, template, context)
