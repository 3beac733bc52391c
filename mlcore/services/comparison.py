"""Champion vs challenger on the same locked set, pair by pair.

``comparison_compute`` makes sure both versions are evaluated on one locked set (inline,
reusing the per-image prediction cache, so only images a version has never seen go through
its model), then computes the paired figures from the cache and the labels the evaluations
stored. The result is JSON-safe and kept in the Django cache under the two evaluation ids:
a re-comparison is a cache read.

**What the gate reads.** ``gate_check`` must never run a model, so the comparison stores its
verdict-relevant figures on the challenger's evaluation: ``report["vs"][<champion version>]``
= ``{"champion_evaluation_id", "set_hash", "macro_f1_cxr4": {...}, "sensitivity": {key:
{"n", "diff": [point, low, high]}}, "computed_at"}``. The gate trusts it only while the
champion still has a succeeded evaluation with that ``set_hash``.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from mlcore.ml.classes import CLASS_KEYS, CLASSES, URGENT_KEYS
from mlcore.models import DatasetVersion, Evaluation, ModelVersion
from mlcore.selectors import applied_thresholds
from mlcore.services.evaluations import (
    LOCKED,
    EvaluationError,
    cached_predictions,
    evaluation_cases,
    evaluation_cases_of,
    evaluation_request,
    evaluation_run,
    set_hash,
    trained_with_feedback,
)
from mlcore.services.operating_points import operating_points_propose

CACHE_VERSION = 1
CACHE_TIMEOUT_S = 7 * 24 * 3600
# The gate compares sensitivity of these (covid, opacity, tuberculosis, viral pneumonia).
URGENT_CXR_KEYS = tuple(c.key for c in CLASSES if c.key in URGENT_KEYS and c.modality == "cxr")


class ComparisonError(ValueError):
    """Bad input for a comparison (the message says what and how to fix it)."""


def comparison_cache_key(champion_evaluation_id: int, challenger_evaluation_id: int,
                         champion_thresholds: dict[str, float] | None = None) -> str:
    """The champion's applied thresholds are part of the key: applying new ones changes its
    operating rule, hence the operating points proposed against it."""
    points = ",".join(f"{k}={v!r}" for k, v in sorted((champion_thresholds or {}).items()))
    return f"mlcore:comparison:v{CACHE_VERSION}:{champion_evaluation_id}:{challenger_evaluation_id}:{points}"


def _evaluated(version: ModelVersion, dataset: DatasetVersion, exclude_feedback: bool, actor: Any) -> Evaluation:
    evaluation = evaluation_request(model_version=version, dataset_version=dataset, set_name=LOCKED, actor=actor,
                                    exclude_feedback=exclude_feedback, enqueue=False)
    if evaluation.status != Evaluation.Status.SUCCEEDED:
        evaluation = evaluation_run(evaluation_id=evaluation.pk)
    if evaluation.status != Evaluation.Status.SUCCEEDED:
        status = evaluation.get_status_display().lower()
        raise ComparisonError(f"the evaluation of {version.name} v{version.version} on {dataset.slug} "
                              f"{status}: {evaluation.failure_reason or 'not finished'}")
    return evaluation


def _check_pair(champion: ModelVersion, challenger: ModelVersion) -> None:
    if champion.pk == challenger.pk:
        raise ComparisonError(f"pick two different versions to compare (both are v{champion.version})")
    if champion.name != challenger.name:
        raise ComparisonError(f"{champion.name} and {challenger.name} are different registered models")


def _pair_excludes_feedback(champion: ModelVersion, challenger: ModelVersion, dataset: DatasetVersion) -> bool:
    # One set for both: feedback leaves it when either version trained on it.
    return trained_with_feedback(champion, dataset) or trained_with_feedback(challenger, dataset)


def comparison_evaluations(*, champion: ModelVersion, challenger: ModelVersion, dataset_version: DatasetVersion
                           ) -> dict[str, Any]:
    """A read: the pair's locked set hash and each version's newest evaluation on it (None
    when it has none), so a page can tell "compare now" from "evaluating"."""
    _check_pair(champion, challenger)
    if dataset_version.status != DatasetVersion.Status.READY:
        raise ComparisonError(f"dataset version {dataset_version.slug} is not ready "
                              f"(status: {dataset_version.get_status_display()})")
    cases, _ = evaluation_cases(dataset=dataset_version, set_name=LOCKED,
                                exclude_feedback=_pair_excludes_feedback(champion, challenger, dataset_version))
    if not cases:
        raise ComparisonError(f"dataset version {dataset_version.slug} has no images in its locked set")
    digest = set_hash(cases)

    def newest(version: ModelVersion) -> Evaluation | None:
        return (Evaluation.objects.filter(model_version=version, dataset_version=dataset_version, set_name=LOCKED,
                                          set_hash=digest).defer("report", "plots")
                .order_by("-created_at", "-id").first())

    return {"set_hash": digest, "n": len(cases), "champion": newest(champion), "challenger": newest(challenger)}


def comparison_request(*, champion: ModelVersion, challenger: ModelVersion, dataset_version: DatasetVersion,
                       actor: Any = None) -> list[Evaluation]:
    """Queue the evaluations a comparison needs (on the training queue); the page then
    computes the comparison from the cache once both have succeeded."""
    _check_pair(champion, challenger)
    exclude = _pair_excludes_feedback(champion, challenger, dataset_version)
    try:
        return [evaluation_request(model_version=v, dataset_version=dataset_version, set_name=LOCKED, actor=actor,
                                   exclude_feedback=exclude) for v in (champion, challenger)]
    except EvaluationError as exc:
        raise ComparisonError(str(exc)) from None


def comparison_compute(*, champion: ModelVersion, challenger: ModelVersion, dataset_version: DatasetVersion,
                       actor: Any = None) -> dict[str, Any]:
    """Everything the comparison page shows, JSON-safe; challenger - champion throughout.
    Runs the missing evaluations inline (a CLI, a benchmark, the tests; the page queues
    them instead with :func:`comparison_request`)."""
    _check_pair(champion, challenger)
    exclude_feedback = _pair_excludes_feedback(champion, challenger, dataset_version)
    try:
        ev_a = _evaluated(champion, dataset_version, exclude_feedback, actor)
        ev_b = _evaluated(challenger, dataset_version, exclude_feedback, actor)
    except EvaluationError as exc:
        raise ComparisonError(str(exc)) from None
    if ev_a.set_hash != ev_b.set_hash:  # only if the store changed between the two runs
        raise ComparisonError("the two evaluations scored different sets (the dataset changed in between); "
                              "compare again")
    thresholds = applied_thresholds(name=champion.name, version=champion.version)
    key = comparison_cache_key(ev_a.pk, ev_b.pk, thresholds)
    result = cache.get(key)
    if result is None:
        result = _compute(champion, challenger, dataset_version, ev_a, ev_b, thresholds)
        _store_for_gate(ev_b, champion, ev_a, result)
        operating_points_propose(champion=champion, challenger=challenger, set_hash=ev_a.set_hash,
                                 proposals=result["operating_points"])
        cache.set(key, result, CACHE_TIMEOUT_S)
    return result


def _compute(champion: ModelVersion, challenger: ModelVersion, dataset: DatasetVersion, ev_a: Evaluation,
             ev_b: Evaluation, champion_thresholds: dict[str, float]) -> dict[str, Any]:
    # numpy statistics and matplotlib: loaded on the first comparison, not with the web process
    from mlcore.ml.evaluation.compare import (
        flip_list,
        mcnemar,
        net_correct_flips,
        paired_bootstrap,
        worklist_effect,
    )
    from mlcore.ml.evaluation.operating_points import propose_operating_points
    from mlcore.ml.plots.evaluation import differences_svg

    started = time.perf_counter()
    cases = evaluation_cases_of(ev_a)
    a = cached_predictions(version=champion, cases=cases)
    b = cached_predictions(version=challenger, cases=cases)
    labels = a["labels"]
    paired = paired_bootstrap(a["probs"], b["probs"], labels, CLASS_KEYS)
    test = mcnemar(a["probs"].argmax(axis=1) == labels, b["probs"].argmax(axis=1) == labels)
    label_keys = [c.class_key for c in cases]
    flips = flip_list(list(a["top"]), list(b["top"]), label_keys, case_ids=[c.path for c in cases])
    for f in flips:
        i = f["index"]
        f["champion_p"] = round(float(a["probs"][i].max()), 4)
        f["challenger_p"] = round(float(b["probs"][i].max()), 4)
        f["sha256"] = cases[i].sha256
    return {
        "name": champion.name,
        "dataset": dataset.slug,
        "set_hash": ev_a.set_hash,
        "n": len(cases),
        "champion": _side(champion, ev_a),
        "challenger": _side(challenger, ev_b),
        "paired": paired,
        "mcnemar": test,
        "flips": flips,
        "net_flips": net_correct_flips(flips, CLASS_KEYS),
        "worklist": worklist_effect(flips),
        "urgent_cxr_keys": list(URGENT_CXR_KEYS),
        # Per urgent class: the challenger's threshold keeping the champion's sensitivity.
        "operating_points": propose_operating_points(
            champion_probs=a["probs"], challenger_probs=b["probs"], labels=labels, class_keys=CLASS_KEYS,
            urgent_keys=URGENT_KEYS, champion_thresholds=champion_thresholds, champion_ood=a["ood"],
            challenger_ood=b["ood"]),
        "champion_thresholds": champion_thresholds,
        "plots": {"differences": differences_svg(paired)},
        "computed_at": timezone.now().isoformat(),
        "compute_seconds": round(time.perf_counter() - started, 3),
    }


def _side(version: ModelVersion, evaluation: Evaluation) -> dict[str, Any]:
    report = evaluation.report or {}
    return {"version": version.version, "evaluation_id": evaluation.pk, "synthetic": version.synthetic,
            "accuracy": report.get("accuracy"), "macro_f1_cxr4": report.get("macro_f1_cxr4"),
            "ece": report.get("ece"), "urgent_sensitivity": report.get("urgent_sensitivity"),
            "ood_flag_rate": (report.get("ood") or {}).get("flag_rate")}


def _store_for_gate(challenger_eval: Evaluation, champion: ModelVersion, champion_eval: Evaluation,
                    result: dict[str, Any]) -> None:
    paired = result["paired"]
    entry = {
        "champion_evaluation_id": champion_eval.pk,
        "set_hash": champion_eval.set_hash,
        "macro_f1_cxr4": paired["macro_f1_cxr4"],
        "sensitivity": {k: {"n": paired["per_class"][k]["n"], "diff": paired["per_class"][k]["sensitivity"]["diff"]}
                        for k in URGENT_CXR_KEYS},
        "mcnemar": result["mcnemar"],
        "computed_at": result["computed_at"],
    }
    with transaction.atomic():
        row = Evaluation.objects.select_for_update().get(pk=challenger_eval.pk)
        report = dict(row.report or {})
        report["vs"] = {**(report.get("vs") or {}), str(champion.version): entry}
        row.report = report
        row.save(update_fields=["report"])
