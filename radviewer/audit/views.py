from __future__ import annotations

import csv
from collections.abc import Iterator

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from radviewer.audit.actions import AuditAction
from radviewer.audit.forms import AuditFilterForm
from radviewer.audit.selectors import AuditFilters, audit_csv_rows, audit_event_list, audit_object_types
from radviewer.audit.services import audit_event_create
from radviewer.lib.auth import permission_required_403


def _filters(request: HttpRequest) -> tuple[AuditFilterForm, AuditFilters]:
    form = AuditFilterForm(request.GET or None)
    return form, (AuditFilters(**form.cleaned_data) if form.is_valid() else AuditFilters())


@permission_required_403("accounts.view_audit_log")
def audit_list(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    page = Paginator(audit_event_list(filters=filters), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "object_types": audit_object_types(),
        "query": query.urlencode(),
    }
    template = "audit/list.html#events" if request.htmx else "audit/list.html"
    return render(request, template, context)


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@permission_required_403("accounts.view_audit_log")
def audit_export(request: HttpRequest) -> HttpResponse:
    """Every event matching the list's filters as CSV, streamed oldest first."""
    form, filters = _filters(request)
    if request.GET and not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
        return HttpResponse(f"Cannot export: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
    audit_event_create(actor=request.user, action=AuditAction.AUDIT_EXPORTED, request=request,
                       details={k: str(v) for k, v in (form.cleaned_data if form.is_bound else {}).items() if v})
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        for row in audit_csv_rows(filters=filters):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="radviewer-audit-{stamp}.csv"'
    return response
