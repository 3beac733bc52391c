"""Training jobs: list, new-job form, a job's live page (htmx partial) and cancel."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mlcore.forms import TrainingJobForm
from mlcore.models import TrainingJob
from mlcore.selectors.training import (
    dataset_versions_for_training,
    training_job_get,
    training_job_progress,
    training_jobs,
)
from mlcore.services.training_jobs import (
    PRECISIONS,
    TrainingJobError,
    recipe_defaults,
    training_job_cancel,
    training_job_create,
)
from radviewer.lib.auth import permission_required_403

PERM = "accounts.manage_models"
TEMPLATE = "mlcore/training_job.html"


@permission_required_403(PERM)
def training_job_list(request: HttpRequest) -> HttpResponse:
    rows = [{"job": job, "progress": training_job_progress(job)} for job in training_jobs()]
    return render(request, "mlcore/training_jobs.html", {"rows": rows})


def _variants() -> list[str]:
    from mlcore.ml.models import list_models  # torch: the registry of variants (form only)

    return list(list_models())


@permission_required_403(PERM)
def training_job_new(request: HttpRequest) -> HttpResponse:
    defaults = recipe_defaults()
    kwargs = {"variants": _variants(), "precisions": PRECISIONS}
    status = 200
    if request.method == "POST":
        form = TrainingJobForm(request.POST, **kwargs)
        if form.is_valid():
            try:
                job = training_job_create(actor=request.user,
                                          dataset_version=form.cleaned_data["dataset_version"],
                                          **form.recipe())
            except TrainingJobError as exc:
                for name, message in exc.errors.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                messages.success(request, f"Training job {job.pk} queued.")
                return redirect("mlcore:training_job", pk=job.pk)
        status = 400
    else:
        form = TrainingJobForm(initial=defaults, **kwargs)
    return render(request, "mlcore/training_job_new.html",
                  {"form": form, "defaults": defaults,
                   "has_datasets": dataset_versions_for_training().exists()}, status=status)


def _curves(job: TrainingJob) -> str:
    # Re-drawn only when an epoch was added: the page polls every 2 s.
    from mlcore.ml.plots.training import training_curves_svg  # matplotlib: this page only

    key = f"mlcore:training-curves:{job.pk}:{len(job.history)}:{job.epochs}"
    svg = cache.get(key)
    if svg is None:
        svg = training_curves_svg(job.history, epochs=job.epochs or None)
        cache.set(key, svg, timeout=3600)
    return svg


@permission_required_403(PERM)
def training_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = training_job_get(pk=pk)
    context = {
        "job": job,
        "progress": training_job_progress(job),
        "curves_svg": _curves(job),
        "mlflow_ui_url": getattr(settings, "MLFLOW_UI_URL", "").rstrip("/"),
    }
    template = f"{TEMPLATE}#progress" if request.htmx else TEMPLATE
    return render(request, template, context)


@permission_required_403(PERM)
@require_POST
def training_job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = training_job_get(pk=pk)
    try:
        job = training_job_cancel(job=job, actor=request.user)
    except TrainingJobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Training job {job.pk}: "
                         + ("cancelled." if job.is_terminal else "cancel requested; it stops "
                            "within a few seconds and registers nothing."))
    return redirect("mlcore:training_job", pk=job.pk)
