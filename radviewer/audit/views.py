from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from radviewer.audit.forms import AuditFilterForm
from radviewer.audit.selectors import AuditFilters, audit_event_list, audit_object_types
from radviewer.lib.auth import permission_required_403


@permission_required_403("accounts.view_audit_log")
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = AuditFilters(**form.cleaned_data) if form.is_valid() else AuditFilters()
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
