"""Promotion, rollback and alias removal; change records (page, JSON, print); the alias
timeline ("what served at time t"). Thin: parse, call the selector or service, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_POST

from mlcore.forms import AliasRemoveForm, CriteriaForm, PromotionForm, RollbackForm
from mlcore.models import ModelVersion
from mlcore.selectors import alias_map, operating_points_proposed
from mlcore.selectors.promotion import (
    alias_timeline,
    change_record_get,
    change_records,
    served_at_all,
)
from mlcore.services.change_records import change_record_export
from mlcore.services.gate import acceptance_criteria, gate_check
from mlcore.services.promotion import (
    AliasMovedMeanwhile,
    GateBlocked,
    PromotionError,
    acceptance_criteria_update,
    alias_move,
    alias_remove,
    production_rollback,
)
from mlcore.views.dashboard import ALIAS_ORDER, registry_context
from radviewer.lib.auth import permission_required_403

PERM = "accounts.manage_models"


def _next_alias(version: str, holders: dict[str, str]) -> str:
    """The alias a version would usually take next: candidate -> canary -> production."""
    held = [a for a in ALIAS_ORDER if holders.get(a) == version]
    if "canary" in held:
        return "production"
    return "canary" if "candidate" in held else "candidate"


@require_http_methods(["GET", "POST"])
@permission_required_403(PERM)
def promote(request: HttpRequest, version: str) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    mv = get_object_or_404(ModelVersion, name=name, version=version)
    holders = alias_map(name=name)
    initial = {f"expected_{a}": holders.get(a, "") for a in ALIAS_ORDER}
    status, error, verdict = 200, "", None
    if request.method == "POST":
        form = PromotionForm(request.POST)
        if form.is_valid():
            alias = form.cleaned_data["alias"]
            try:
                record = alias_move(actor=request.user, alias=alias, version=mv.version, name=name,
                                    reason=form.cleaned_data["reason"],
                                    override_justification=form.cleaned_data["override_justification"],
                                    expected_current=form.expected_current(),
                                    apply_operating_points=form.cleaned_data["apply_operating_points"])
            except GateBlocked as exc:
                status, error, verdict = 422, str(exc), exc.verdict
            except AliasMovedMeanwhile as exc:
                status, error = 409, str(exc)
            except PromotionError as exc:
                status, error = 422, str(exc)
            else:
                messages.success(request, f"v{mv.version} now holds {alias}.")
                return redirect("mlcore:change_detail", pk=record.pk)
        else:
            status = 422
        alias = form.data.get("alias") if form.data.get("alias") in ALIAS_ORDER else _next_alias(mv.version, holders)
    else:
        alias = request.GET.get("alias", "")
        alias = alias if alias in ALIAS_ORDER else _next_alias(mv.version, holders)
        form = PromotionForm(initial={**initial, "alias": alias})
    if verdict is None:
        verdict = gate_check(name=name, alias=alias, version=mv.version)
    return render(request, "mlcore/promote.html", {
        "name": name, "mv": mv, "form": form, "alias": alias, "verdict": verdict, "error": error,
        "holders": [(a, holders.get(a, "")) for a in ALIAS_ORDER], "aliases": ALIAS_ORDER,
        "held": [a for a in ALIAS_ORDER if holders.get(a) == mv.version],
        "criteria": acceptance_criteria(name=name), **registry_context(name),
        "proposed_points": operating_points_proposed(name=name, version=mv.version,
                                                     champion_version=holders.get("production", ""))
        if alias == "production" else [],
    }, status=status)


@require_POST
@permission_required_403(PERM)
def rollback(request: HttpRequest) -> HttpResponse:
    form = RollbackForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Roll back needs a reason.")
        return redirect("mlcore:dashboard")
    try:
        record = production_rollback(actor=request.user, reason=form.cleaned_data["reason"],
                                     expected_current=form.cleaned_data["expected_current"] or None)
    except PromotionError as exc:
        messages.error(request, f"Not rolled back: {exc}")
        return redirect("mlcore:dashboard")
    messages.success(request, f"Production rolled back from v{record.from_version} to v{record.to_version}.")
    return redirect("mlcore:change_detail", pk=record.pk)


@require_POST
@permission_required_403(PERM)
def remove_alias(request: HttpRequest, alias: str) -> HttpResponse:
    form = AliasRemoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Removing {alias} needs a reason.")
        return redirect("mlcore:dashboard")
    try:
        record = alias_remove(actor=request.user, alias=alias, reason=form.cleaned_data["reason"],
                              expected_current=form.cleaned_data["expected_current"] or None)
    except PromotionError as exc:
        messages.error(request, f"Not removed: {exc}")
        return redirect("mlcore:dashboard")
    messages.success(request, f"{alias} removed from v{record.from_version}.")
    return redirect("mlcore:change_detail", pk=record.pk)


@permission_required_403(PERM)
def change_list(request: HttpRequest) -> HttpResponse:
    alias = request.GET.get("alias", "")
    records = change_records(name=settings.MLFLOW_REGISTERED_MODEL, alias=alias if alias in ALIAS_ORDER else None)
    return render(request, "mlcore/change_list.html", {"records": records[:200], "alias": alias,
                                                       "aliases": ALIAS_ORDER})


def _record_or_404(pk: int):
    record = change_record_get(pk=pk)
    if record is None:
        raise Http404("No such change record")
    return record


@permission_required_403(PERM)
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    record = _record_or_404(pk)
    return render(request, "mlcore/change_detail.html", {"record": record, "s": record.sections})


@permission_required_403(PERM)
def change_json(request: HttpRequest, pk: int) -> HttpResponse:
    record = _record_or_404(pk)
    payload = change_record_export(actor=request.user, record=record, fmt="json", request=request)
    response = JsonResponse(payload, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="change-record-{record.pk}.json"'
    return response


@permission_required_403(PERM)
def change_print(request: HttpRequest, pk: int) -> HttpResponse:
    record = _record_or_404(pk)
    change_record_export(actor=request.user, record=record, fmt="print", request=request)
    return render(request, "mlcore/change_print.html", {"record": record, "s": record.sections,
                                                        "printed_at": timezone.now()})


@permission_required_403(PERM)
def timeline(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    raw = request.GET.get("at", "").strip()
    at, error, status = None, "", 200
    if raw:
        try:
            at = parse_datetime(raw)
        except ValueError:
            at = None
        if at is None:
            error, status = f"{raw!r} is not a date and time; use e.g. 2026-12-05T14:30 or 2026-12-05T14:30:00Z", 400
        elif timezone.is_naive(at):
            at = timezone.make_aware(at)
    context = {
        "name": name, "at": at, "raw": raw, "error": error,
        "served": served_at_all(name=name, at=at) if at else None,
        "timeline": list(alias_timeline(name=name, limit=200)),
    }
    template = "mlcore/timeline.html#served" if request.htmx else "mlcore/timeline.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required_403(PERM)
def criteria(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    current = acceptance_criteria(name=name)
    form = CriteriaForm(request.POST or None, instance=current)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                acceptance_criteria_update(actor=request.user, name=name,
                                           **{f: form.cleaned_data[f] for f in CriteriaForm.Meta.fields})
            except PromotionError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Acceptance criteria saved.")
                return redirect(reverse("mlcore:criteria"))
        status = 422
    return render(request, "mlcore/criteria.html", {"name": name, "form": form, "criteria": current},
                  status=status)
