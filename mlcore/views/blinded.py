"""Blinded reads: the share (a small form) and the automation-bias report. Thin: parse,
call the selector or service, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mlcore.selectors import automation_bias_report, blinded_reads_summary, class_display_name
from mlcore.services.blinding import BlindingError, blinded_percent, blinded_share_set
from radviewer.lib.auth import permission_required_403

PERM = "accounts.manage_models"


@require_http_methods(["GET", "POST"])
@permission_required_403(PERM)
def blinded(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    error, status, entered = "", 200, ""
    if request.method == "POST":
        entered = request.POST.get("blinded_percent", "")
        try:
            policy = blinded_share_set(actor=request.user, value=entered, name=name)
        except BlindingError as exc:
            error, status = str(exc), 422
        else:
            messages.success(request, f"Blinded reads: {policy.blinded_percent:g} % of new studies.")
            return redirect("mlcore:blinded")
    report = automation_bias_report(name=name)
    for version in report:
        version["classes"] = [{"key": k, "name": class_display_name(k), **v} for k, v in version["per_class"].items()]
    return render(request, "mlcore/blinded.html", {
        "name": name, "percent": blinded_percent(name=name), "entered": entered, "error": error,
        "report": report, "summary": blinded_reads_summary(name=name),
    }, status=status)
