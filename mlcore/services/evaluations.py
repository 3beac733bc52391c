"""Evaluations: a model version scored on an evaluation set, stored as its own record.

An evaluation never touches the metrics the version was registered with (MLflow run metrics
and ``ModelVersion.metrics``); it writes an ``Evaluation`` row with its report and plots.

**The locked set** of a dataset version: its ``final_eval`` rows plus its ``feedback`` rows
(confirmed corrections), minus the feedback rows when a version being evaluated was trained
with feedback from that store (``include_feedback`` in the run's params: those cases were
training data). An evaluation-only dataset (``kind=evaluation``) is never trained on: all its
rows. An image present twice (same pixel hash) counts once, its first row winning
(``final_eval`` before ``feedback``). ``set_hash`` = sha256 over the sorted
``(sha256, class_key)`` pairs, so two evaluations with the same hash scored the same images
with the same labels and can be compared pair by pair.

Predictions are cached per (version, image hash) in ``PredictionCache``: a second
evaluation or a comparison on an overlapping set runs the model only on images it has not
seen.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data import SPLITS, open_store
from mlcore.models import DatasetVersion, Evaluation, ModelVersion, PredictionCache
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

LOCKED = "locked"
SET_NAMES = (LOCKED, *SPLITS)
CACHE_CHUNK = 64  # images scored per model call
_IN_CHUNK = 500  # hashes per IN (...) query (SQLite's variable limit)


class EvaluationError(ValueError):
    """Bad input for an evaluation (the message says what and how to fix it)."""


@dataclass(frozen=True, slots=True)
class EvalCase:
    path: str  # manifest path (thumbnails: mlcore:dataset_image)
    sha256: str
    class_key: str
    split: str


def trained_with_feedback(version: ModelVersion, dataset: DatasetVersion) -> bool:
    """Did ``version``'s training read ``dataset``'s feedback rows? True when the run says
    ``include_feedback`` and it trained on this store (or the run does not say which)."""
    params = version.params or {}
    if str(params.get("include_feedback", "")).lower() != "true":
        return False
    store_uri = params.get("store_uri", "")
    return not store_uri or _same_store(store_uri, dataset.store_uri)


def _same_store(a: str, b: str) -> bool:
    """``/x/store`` and ``file:///x/store`` are one store."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    def norm(uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            return str(Path(unquote(parsed.path) if parsed.scheme else uri).resolve())
        return uri.rstrip("/")

    return norm(a) == norm(b)


def evaluation_cases(*, dataset: DatasetVersion, set_name: str = LOCKED, exclude_feedback: bool = False
                     ) -> tuple[list[EvalCase], dict[str, Any]]:
    """The cases of ``set_name`` in ``dataset`` and a description of how they were chosen."""
    if set_name not in SET_NAMES:
        raise EvaluationError(f"unknown evaluation set {set_name!r}; accepted: {', '.join(SET_NAMES)}")
    try:
        rows = open_store(dataset.store_uri).manifest()
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read dataset version {dataset.slug}: {exc}") from None
    info: dict[str, Any] = {"dataset": dataset.slug, "set_name": set_name, "kind": dataset.kind,
                            "manifest_hash": dataset.manifest_hash}
    if set_name != LOCKED:
        chosen = [r for r in rows if r.split == set_name]
    elif dataset.kind == DatasetVersion.Kind.EVALUATION:
        chosen = list(rows)
    else:
        final = [r for r in rows if r.split == "final_eval"]
        feedback = [r for r in rows if r.split == "feedback"]
        chosen = final + ([] if exclude_feedback else feedback)
        info.update(final_eval=len(final), feedback=0 if exclude_feedback else len(feedback),
                    feedback_excluded=len(feedback) if exclude_feedback else 0)
    info["exclude_feedback"] = bool(exclude_feedback)
    seen: set[str] = set()
    cases = []
    for r in chosen:
        if r.sha256 not in seen:
            seen.add(r.sha256)
            cases.append(EvalCase(path=r.path, sha256=r.sha256, class_key=r.class_key, split=r.split))
    info["duplicates_dropped"] = len(chosen) - len(cases)
    return cases, info


def set_hash(cases: Iterable[EvalCase]) -> str:
    digest = hashlib.sha256()
    for sha, key in sorted((c.sha256, c.class_key) for c in cases):
        digest.update(f"{sha}:{key}\n".encode())
    return digest.hexdigest()


def _check_ready(dataset: DatasetVersion) -> None:
    if dataset.status != DatasetVersion.Status.READY:
        raise EvaluationError(f"dataset version {dataset.slug} is not ready (status: {dataset.get_status_display()})"
                              "; evaluate once its import has finished")


def _actor_fields(actor: Any, actor_label: str) -> dict[str, Any]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return {"actor": user, "actor_label": "" if user else (actor_label or "system")}


def evaluation_request(*, model_version: ModelVersion, dataset_version: DatasetVersion, set_name: str = LOCKED,
                       actor: Any = None, actor_label: str = "", exclude_feedback: bool | None = None,
                       enqueue: bool = True) -> Evaluation:
    """Ask for ``model_version`` to be scored on ``set_name`` of ``dataset_version``.

    Returns the existing evaluation when one with the same set hash has succeeded or is
    under way (a still-queued one is sent again); else a new ``queued`` row, run by the
    ``mlcore.evaluation_run`` task on the training queue after commit (``enqueue=False``: the caller runs it inline).
    ``exclude_feedback`` None = decided from the version's run params (a comparison passes
    True when either of its two versions trained on the feedback, so both score one set).
    """
    _check_ready(dataset_version)
    if exclude_feedback is None:
        exclude_feedback = trained_with_feedback(model_version, dataset_version)
    cases, info = evaluation_cases(dataset=dataset_version, set_name=set_name, exclude_feedback=exclude_feedback)
    if not cases:
        raise EvaluationError(f"dataset version {dataset_version.slug} has no images in its {set_name} set"
                              + (" (final_eval and unused feedback)" if set_name == LOCKED else ""))
    digest = set_hash(cases)
    with transaction.atomic():
        existing = (Evaluation.objects.select_for_update()
                    .filter(model_version=model_version, dataset_version=dataset_version, set_name=set_name,
                            set_hash=digest)
                    .exclude(status=Evaluation.Status.FAILED).order_by("-created_at", "-id").first())
        if existing is not None:
            if enqueue and existing.status == Evaluation.Status.QUEUED:
                # Asked again while still queued: send it again in case its message was lost
                # (the task locks the row and returns at once when the work is done).
                enqueue_on_commit("mlcore.evaluation_run", evaluation_id=existing.pk)
            return existing
        user = actor if getattr(actor, "is_authenticated", False) else None
        evaluation = Evaluation.objects.create(
            model_version=model_version, dataset_version=dataset_version, set_name=set_name, set_hash=digest,
            n=len(cases), report={"set": info}, requested_by=user)
        audit_event_create(**_actor_fields(actor, actor_label), action=AuditAction.EVALUATION_REQUESTED,
                           obj=evaluation, details={"version": f"{model_version.name}/{model_version.version}",
                                                    "dataset": dataset_version.slug, "set_name": set_name,
                                                    "set_hash": digest, "n": len(cases)})
        if enqueue:
            enqueue_on_commit("mlcore.evaluation_run", evaluation_id=evaluation.pk)
    return evaluation


def _cached(version: ModelVersion, hashes: Sequence[str]) -> dict[str, PredictionCache]:
    out: dict[str, PredictionCache] = {}
    for i in range(0, len(hashes), _IN_CHUNK):
        rows = PredictionCache.objects.filter(model_version=version, image_sha256__in=hashes[i:i + _IN_CHUNK])
        out.update({r.image_sha256: r for r in rows})
    return out


def cached_predictions(*, version: ModelVersion, cases: Sequence[EvalCase]) -> dict[str, np.ndarray]:
    """Arrays in case order from the cache (every case must be cached): calibrated and raw
    probabilities, top classes, out-of-scope flags, labels (indices in CLASS_KEYS)."""
    rows = _cached(version, [c.sha256 for c in cases])
    missing = [c.path for c in cases if c.sha256 not in rows]
    if missing:
        raise EvaluationError(f"{len(missing)} images of the set have no cached prediction of "
                              f"{version.name} v{version.version} (e.g. {missing[0]}); evaluate it first")
    index = {k: i for i, k in enumerate(CLASS_KEYS)}
    ordered = [rows[c.sha256] for c in cases]
    return {
        "probs": np.array([r.probabilities for r in ordered], dtype=np.float64),
        "raw": np.array([r.raw_probabilities or r.probabilities for r in ordered], dtype=np.float64),
        "top": np.array([r.top_class for r in ordered], dtype=object),
        "ood": np.array([r.out_of_scope for r in ordered], dtype=bool),
        "scope": np.array([r.scope for r in ordered], dtype=object),
        "labels": np.array([index[c.class_key] for c in cases], dtype=np.int64),
    }


def _load_bundle(version: ModelVersion, tmp: str):
    # torch and MLflow (seconds): only when an evaluation actually runs (worker or inline)
    from django.conf import settings

    from mlcore.ml import tracking
    from mlcore.ml.bundle import ModelBundle

    tracking.configure(settings.MLFLOW_TRACKING_URI)
    bundle = ModelBundle.load(tracking.download_bundle(
        f"models:/{version.name}/{version.version}", tmp, tracking_uri=settings.MLFLOW_TRACKING_URI))
    if tuple(bundle.class_keys) != CLASS_KEYS:
        raise EvaluationError(f"{version.name} v{version.version} predicts {list(bundle.class_keys)}, "
                              f"not the nine classes {list(CLASS_KEYS)}")
    return bundle


def _fill_cache(version: ModelVersion, dataset: DatasetVersion, cases: Sequence[EvalCase], bundle: Any) -> int:
    """Score the cases missing from the cache (bulk insert); returns how many were scored."""
    from mlcore.ml.evaluation.scoring import score_images  # torch: see _load_bundle

    have = _cached(version, [c.sha256 for c in cases])
    missing = [c for c in cases if c.sha256 not in have]
    if not missing:
        return 0
    store = open_store(dataset.store_uri)
    model = bundle.build()
    for i in range(0, len(missing), CACHE_CHUNK):
        part = missing[i:i + CACHE_CHUNK]
        scored = score_images(bundle, [store.read_image(c.path) for c in part], model=model)
        PredictionCache.objects.bulk_create([
            PredictionCache(model_version=version, image_sha256=c.sha256,
                            probabilities=[round(float(p), 7) for p in scored.probabilities[j]],
                            raw_probabilities=[round(float(p), 7) for p in scored.raw_probabilities[j]],
                            top_class=CLASS_KEYS[int(scored.probabilities[j].argmax())],
                            scope=scored.scopes[j], out_of_scope=bool(scored.out_of_scope[j]))
            for j, c in enumerate(part)], ignore_conflicts=True)
    return len(missing)


def build_report(*, cases: Sequence[EvalCase], arrays: dict[str, np.ndarray], info: dict[str, Any],
                 bundle: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The stored report (metrics, intervals, ROC, reliability before/after, out-of-scope
    rates, the cases with their labels) and its SVG plots."""
    # torch via mlcore.ml.evaluation's package import: only where an evaluation runs
    from mlcore.ml.evaluation.card import bootstrap_figures
    from mlcore.ml.evaluation.compare import reliability_before_after, roc_points
    from mlcore.ml.evaluation.metrics import compute_metrics
    from mlcore.ml.plots.evaluation import confusion_svg, per_class_metrics_svg, reliability_svg, roc_svg

    probs, raw, labels, ood = arrays["probs"], arrays["raw"], arrays["labels"], arrays["ood"]
    scopes_undecided = float(np.mean(arrays["scope"] == ""))
    ood_info = {"flag_rate": float(ood.mean()), "scope_undecided_rate": scopes_undecided,
                "threshold": None, "threshold_quantile": None, "score": None}
    if bundle is not None and bundle.ood is not None:
        ood_info.update(threshold=float(bundle.ood.threshold), threshold_quantile=float(bundle.ood.threshold_quantile))
        from mlcore.ml.evaluation.ood import SCORE_NAME

        ood_info["score"] = SCORE_NAME
    extra = {"ood_flag_rate": ood_info["flag_rate"], "scope_undecided_rate": scopes_undecided}
    if bundle is not None:
        extra["temperature"] = float(bundle.temperature)
    metrics = compute_metrics(probs, labels, class_keys=CLASS_KEYS, split=info.get("set_name", LOCKED), extra=extra)
    report = metrics.to_dict()
    intervals = bootstrap_figures(probs, labels, CLASS_KEYS)
    reliability = reliability_before_after(raw, probs, labels)
    roc = roc_points(probs, labels, CLASS_KEYS)
    report.update(
        set=info, intervals=intervals, roc=roc, reliability=reliability, ood=ood_info,
        cases=[{"path": c.path, "sha256": c.sha256, "label": c.class_key, "split": c.split} for c in cases],
    )
    plots = {"roc": roc_svg(roc), "reliability": reliability_svg(reliability),
             "confusion": confusion_svg(report["confusion"], CLASS_KEYS),
             "per_class": per_class_metrics_svg(intervals)}
    return report, plots


def evaluation_run(*, evaluation_id: int) -> Evaluation:
    """Score the evaluation (the task body; callers may run it inline). Returns early when
    it already succeeded or failed; a failure is recorded on the row with its reason. A
    ``running`` row is taken up again: the task is ``acks_late`` with
    ``reject_on_worker_lost``, so a worker killed mid-way has its message redelivered, and the
    predictions it already cached are not computed twice."""
    with transaction.atomic():
        evaluation = (Evaluation.objects.select_for_update().select_related("model_version", "dataset_version")
                      .get(pk=evaluation_id))
        if evaluation.status in (Evaluation.Status.SUCCEEDED, Evaluation.Status.FAILED):
            return evaluation
        evaluation.status = Evaluation.Status.RUNNING
        evaluation.save(update_fields=["status"])
    version, dataset = evaluation.model_version, evaluation.dataset_version
    started = time.perf_counter()
    info = dict((evaluation.report or {}).get("set") or {})
    try:
        cases, info = evaluation_cases(dataset=dataset, set_name=evaluation.set_name,
                                       exclude_feedback=bool(info.get("exclude_feedback")))
        if set_hash(cases) != evaluation.set_hash:
            raise EvaluationError(f"dataset version {dataset.slug} changed since this evaluation was requested "
                                  "(its set hash differs); request a new evaluation")
        with tempfile.TemporaryDirectory(prefix="radviewer-eval-") as tmp:
            bundle = _load_bundle(version, tmp)
            scored = _fill_cache(version, dataset, cases, bundle)
        info["predicted"] = scored
        info["cache_hits"] = len(cases) - scored
        report, plots = build_report(cases=cases, arrays=cached_predictions(version=version, cases=cases),
                                     info=info, bundle=bundle)
    except Exception as exc:  # any failure is recorded on the row with its reason
        reason = str(exc) if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"
        with transaction.atomic():
            evaluation.status = Evaluation.Status.FAILED
            evaluation.failure_reason = reason
            evaluation.finished_at = timezone.now()
            evaluation.seconds = time.perf_counter() - started
            evaluation.save(update_fields=["status", "failure_reason", "finished_at", "seconds"])
            audit_event_create(actor=None, actor_label="system", action=AuditAction.EVALUATION_FAILED,
                               obj=evaluation, details={"reason": reason})
        return evaluation
    with transaction.atomic():
        evaluation.report = report
        evaluation.plots = plots
        evaluation.n = len(cases)
        evaluation.status = Evaluation.Status.SUCCEEDED
        evaluation.finished_at = timezone.now()
        evaluation.seconds = time.perf_counter() - started
        evaluation.save(update_fields=["report", "plots", "n", "status", "finished_at", "seconds"])
        audit_event_create(actor=None, actor_label="system", action=AuditAction.EVALUATION_COMPLETED,
                           obj=evaluation, details={"n": len(cases), "predicted": scored,
                                                    "macro_f1_cxr4": report.get("macro_f1_cxr4"),
                                                    "ece": report.get("ece")})
    return evaluation


def evaluation_cases_of(evaluation: Evaluation) -> list[EvalCase]:
    """The cases an evaluation scored, in its order (from its stored report)."""
    return [EvalCase(path=c["path"], sha256=c["sha256"], class_key=c["label"], split=c.get("split", ""))
            for c in (evaluation.report or {}).get("cases", [])]
