"""The data page: dataset versions and imports (``/ml/data/``), one version (``/ml/data/<slug>/``)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRefresh

from mlcore.forms import DatasetImportForm
from mlcore.ml.data import SPLITS
from mlcore.models import DatasetVersion
from mlcore.selectors.data import dataset_figures, dataset_overview, dataset_version_get, dataset_versions
from mlcore.services.dataset_imports import dataset_import_request
from mlcore.services.datasets import CURRENT_SLUG, dataset_version_ensure_current, dataset_version_refresh
from radviewer.lib.auth import permission_required_403

ACTIVE = (DatasetVersion.Status.QUEUED, DatasetVersion.Status.IMPORTING)


@require_http_methods(["GET", "POST"])
@permission_required_403("accounts.manage_models")
def data_page(request: HttpRequest) -> HttpResponse:
    """Dataset versions and the import form; htmx polls the versions table while an import runs."""
    current = dataset_version_refresh(dataset=dataset_version_ensure_current())
    form = DatasetImportForm(request.POST if request.method == "POST" else None,
                             initial={"seed": 42, "kind": DatasetVersion.Kind.TRAINING})
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_import_request(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():  # a message for a field the form lacks goes on top
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, f"Import of {dataset.slug} queued: "
                                      f"{dataset.progress_total} candidate images.")
            return redirect("mlcore:data")
    versions = dataset_versions()
    context = {
        "versions": versions, "form": form, "current": current,
        "polling": any(v.status in ACTIVE for v in versions),
    }
    template = "mlcore/data.html#versions" if request.htmx else "mlcore/data.html"
    return render(request, template, context, status=400 if form.errors else 200)


@permission_required_403("accounts.manage_models")
def dataset_page(request: HttpRequest, slug: str) -> HttpResponse:
    """One version: counts per split x class, integrity, sources, samples, feedback growth."""
    dataset = dataset_version_get(slug=slug)
    if dataset is None and slug == CURRENT_SLUG:  # linked before the data page registered it
        dataset = dataset_version_ensure_current()
    if dataset is None:
        raise Http404(f"no dataset version {slug!r}")
    context: dict = {"dataset": dataset, "polling": dataset.status in ACTIVE}
    if request.htmx:
        if context["polling"]:
            return render(request, "mlcore/dataset.html#import_status", context)
        return HttpResponseClientRefresh()  # done: the whole page changes (figures appear)
    if dataset.status == DatasetVersion.Status.READY:
        dataset = dataset_version_refresh(dataset=dataset)
        overview = dataset_overview(dataset=dataset)
        context.update(
            overview=overview,
            figures=dataset_figures(overview=overview),
            rows=[{"key": c, "label": overview.class_label(c),
                   "cells": [overview.counts[s][c] for s in SPLITS],
                   "total": overview.class_totals[c]} for c in overview.classes],
            sample_rows=[{"key": c, "label": overview.class_label(c),
                          "cells": [(s, overview.samples[c].get(s, [])) for s in overview.splits]}
                         for c in overview.classes],
            source_rows=[{"key": c, "label": overview.class_label(c), "sources": overview.sources[c]}
                         for c in overview.classes],
            splits=SPLITS,
            lineage=overview.lineage[:200],
        )
    return render(request, "mlcore/dataset.html", context)
