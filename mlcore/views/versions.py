"""The version page (report, lineage, evaluations) and the comparison of two versions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from mlcore.ml.classes import CLASS_BY_KEY, CLASS_KEYS
from mlcore.models import Evaluation, ModelVersion
from mlcore.selectors import alias_map, model_versions, operating_points
from mlcore.selectors.evaluations import (
    dataset_version_get,
    dataset_with_manifest,
    default_evaluation_dataset,
    evaluations_of,
    model_version_get,
    newest_locked_evaluation,
    ready_datasets,
    training_curves_svg,
    version_aliases,
)
from mlcore.services.comparison import (
    ComparisonError,
    comparison_compute,
    comparison_evaluations,
    comparison_request,
)
from mlcore.services.evaluations import SET_NAMES, EvaluationError, evaluation_request
from mlcore.services.gate import gate_check
from radviewer.lib.auth import permission_required_403

RECIPE_KEYS = ("model_name", "image_size", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "seed",
               "precision", "precision_resolved", "accelerator", "augment", "class_weighting", "intensity",
               "label_smoothing", "mixup_alpha", "focal_gamma",
               "include_feedback", "source_balance", "ema_decay", "n_parameters",
               "torch_version")
FLIPS_PER_PAGE = 100  # thumbnails per page of the flip list
FLIP_KINDS = {"to_urgent": "moves up to urgent", "to_routine": "moves down to routine",
              "class_change": "class changes, same urgency"}
FLIP_EFFECTS = {"fixed": "challenger right, champion wrong", "broken": "champion right, challenger wrong",
                "both_wrong": "both wrong"}


def _names() -> dict[str, str]:
    return {k: c.display_name for k, c in CLASS_BY_KEY.items()}


def _per_class_rows(evaluation: Evaluation | None) -> list[dict[str, Any]]:
    if evaluation is None:
        return []
    intervals = (evaluation.report or {}).get("intervals", {}).get("per_class", {})
    return [{"key": k, "name": CLASS_BY_KEY[k].display_name, "urgent": CLASS_BY_KEY[k].urgent, **intervals[k]}
            for k in CLASS_KEYS if k in intervals and intervals[k].get("n")]


def _snapshot(params: dict[str, str]) -> dict[str, Any]:
    """The run's data snapshot from its flattened params (``data.counts.<split>.<class>``)."""
    counts: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        if key.startswith("data.counts."):
            split, _, cls = key.removeprefix("data.counts.").partition(".")
            counts.setdefault(split, {})[cls] = value
    manifest_hash = params.get("data.manifest_hash", "")
    return {"store_uri": params.get("store_uri", ""), "manifest_hash": manifest_hash,
            "dataset": dataset_with_manifest(manifest_hash=manifest_hash),
            "counts": counts, "class_keys": [k for k in CLASS_KEYS if any(k in c for c in counts.values())],
            "include_feedback": params.get("include_feedback", "")}


@require_http_methods(["GET", "POST"])
@permission_required_403("accounts.manage_models")
def version_detail(request: HttpRequest, version: str) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    mv = model_version_get(name=name, version=version)
    if mv is None:
        raise Http404(f"{name} has no version {version!r}")
    if request.method == "POST":
        return _evaluate_on(request, mv)
    evaluation = newest_locked_evaluation(version=mv)
    params = mv.params or {}
    tags = mv.tags or {}
    default_dataset = default_evaluation_dataset(version=mv)
    evaluations = list(evaluations_of(version=mv))
    context = {
        "name": name, "mv": mv, "aliases": version_aliases(version=mv),
        "registered_metrics": sorted(mv.metrics.items()),
        "evaluation": evaluation, "report": evaluation.report if evaluation else {},
        "per_class": _per_class_rows(evaluation),
        "curves_svg": training_curves_svg(version=mv),
        "snapshot": _snapshot(params),
        "lineage": {"parent": params.get("parent_version") or tags.get("radviewer.parent_version", ""),
                    "commit": params.get("git_commit", ""), "run_id": mv.run_id,
                    "recipe": [(k, params[k]) for k in RECIPE_KEYS if k in params]},
        "evaluations": evaluations,
        "operating_points": operating_points(name=name, version=mv.version),
        "pending": any(e.status in (Evaluation.Status.QUEUED, Evaluation.Status.RUNNING) for e in evaluations),
        "datasets": list(ready_datasets()), "default_dataset": default_dataset, "set_names": SET_NAMES,
        "names": _names(),
    }
    if request.htmx:
        return render(request, "mlcore/version.html#evaluations", context)
    return render(request, "mlcore/version.html", context)


def _evaluate_on(request: HttpRequest, mv: ModelVersion) -> HttpResponse:
    here = reverse("mlcore:version", args=[mv.version])
    slug = request.POST.get("dataset", "")
    dataset = dataset_version_get(slug=slug)
    if dataset is None:
        messages.error(request, f"unknown dataset version {slug!r}; choose one from the list")
        return redirect(here)
    try:
        evaluation = evaluation_request(model_version=mv, dataset_version=dataset,
                                        set_name=request.POST.get("set_name", "locked"), actor=request.user)
    except EvaluationError as exc:
        messages.error(request, str(exc))
        return redirect(here)
    messages.success(request, f"evaluation {evaluation.pk} of v{mv.version} on {dataset.slug} "
                              f"({evaluation.set_name}): {evaluation.get_status_display().lower()}")
    return redirect(here)


def _compare_form_context(name: str, a: str, b: str, slug: str) -> dict[str, Any]:
    aliases = alias_map(name=name)
    return {"versions": list(model_versions(name=name)), "datasets": list(ready_datasets()),
            "a": a or aliases.get("production", ""), "b": b or aliases.get("candidate", ""), "slug": slug,
            "name": name, "names": _names(), "flip_kinds": FLIP_KINDS, "flip_effects": FLIP_EFFECTS,
            "class_keys": CLASS_KEYS}


def _filtered_flips(flips: list[dict[str, Any]], cls: str, kind: str, effect: str) -> list[dict[str, Any]]:
    return [f for f in flips
            if (not cls or cls in (f["champion"], f["challenger"], f["label"]))
            and (not kind or f["kind"] == kind) and (not effect or f["effect"] == effect)]


@require_http_methods(["GET", "POST"])
@permission_required_403("accounts.manage_models")
def compare(request: HttpRequest) -> HttpResponse:
    """``?a=<champion>&b=<challenger>&dataset=<slug>`` (versions or aliases; + ``class``,
    ``kind``, ``effect`` filters of the flip list). POST queues the evaluations the comparison still needs."""
    name = settings.MLFLOW_REGISTERED_MODEL
    data = request.POST if request.method == "POST" else request.GET
    a, b, slug = data.get("a", "").strip(), data.get("b", "").strip(), data.get("dataset", "").strip()
    aliases = alias_map(name=name)  # ?a=production&b=candidate works too
    a, b = aliases.get(a, a), aliases.get(b, b)
    context = _compare_form_context(name, a, b, slug)
    if not (a and b and slug):
        if not slug:
            challenger = model_version_get(name=name, version=context["b"]) if context["b"] else None
            default = default_evaluation_dataset(version=challenger) if challenger else None
            context["slug"] = default.slug if default else ""
        return render(request, "mlcore/compare.html", context)
    problems = []
    champion, challenger = model_version_get(name=name, version=a), model_version_get(name=name, version=b)
    dataset = dataset_version_get(slug=slug)
    if champion is None:
        problems.append(f"{name} has no version {a!r}")
    if challenger is None:
        problems.append(f"{name} has no version {b!r}")
    if dataset is None:
        problems.append(f"unknown dataset version {slug!r}")
    state = None
    if not problems:
        try:
            if request.method == "POST":
                comparison_request(champion=champion, challenger=challenger, dataset_version=dataset,
                                   actor=request.user)
                messages.success(request, "evaluations queued on the training queue; this page updates when done")
                return redirect(f"{reverse('mlcore:compare')}?a={a}&b={b}&dataset={slug}")
            state = comparison_evaluations(champion=champion, challenger=challenger, dataset_version=dataset)
        except ComparisonError as exc:
            problems.append(str(exc))
    if problems:
        context["problems"] = problems
        return render(request, "mlcore/compare.html", context, status=400)
    under_way = (Evaluation.Status.QUEUED, Evaluation.Status.RUNNING)
    context.update(state=state, champion=champion, challenger=challenger, dataset=dataset,
                   pending=any(e is not None and e.status in under_way
                               for e in (state["champion"], state["challenger"])))
    done = Evaluation.Status.SUCCEEDED
    if state["champion"] is not None and state["challenger"] is not None \
            and state["champion"].status == done and state["challenger"].status == done:
        try:
            result = comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset,
                                        actor=request.user)
        except ComparisonError as exc:
            context["problems"] = [str(exc)]
            return render(request, "mlcore/compare.html", context, status=400)
        cls, kind, effect = (request.GET.get(k, "") for k in ("class", "kind", "effect"))
        flips = _filtered_flips(result["flips"], cls, kind, effect)
        pages = max(1, -(-len(flips) // FLIPS_PER_PAGE))
        try:
            page = min(max(1, int(request.GET.get("page", "1"))), pages)
        except ValueError:
            page = 1
        filters = {"class": cls, "kind": kind, "effect": effect}
        base = {"a": a, "b": b, "dataset": slug, **{k: v for k, v in filters.items() if v}}
        context.update(
            result=result, flips=flips[(page - 1) * FLIPS_PER_PAGE:page * FLIPS_PER_PAGE], flips_total=len(flips),
            page=page, pages=pages,
            prev_url=f"?{urlencode({**base, 'page': page - 1})}#flips" if page > 1 else "",
            next_url=f"?{urlencode({**base, 'page': page + 1})}#flips" if page < pages else "",
            filters=filters,
            per_class=[{"key": k, "name": CLASS_BY_KEY[k].display_name, "urgent": CLASS_BY_KEY[k].urgent,
                        **result["paired"]["per_class"][k], "flips": result["net_flips"][k]}
                       for k in CLASS_KEYS if result["paired"]["per_class"][k]["n"]],
            gate={alias: gate_check(name=name, alias=alias, version=challenger.version).to_dict()
                  for alias in ("canary", "production")},
        )
    if request.htmx:
        return render(request, "mlcore/compare.html#comparison", context)
    return render(request, "mlcore/compare.html", context)
