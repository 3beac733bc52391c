"""Drift: per-study observations, each version's reference, and the checks that compare them.

- :func:`drift_observation_record`: the clinical side calls it right after it stored a
  prediction, with an opaque ``ref`` (``prediction:<id>``) and the ``TriageOutput``; one row
  per ref (a repeated call is a no-op).
- :func:`drift_reference_for`: a version's reference -- the local cache, else the MLflow
  run artefact ``drift/reference.npz`` logged at training time, else, for the starter
  model, the file shipped next to it (``mlcore/starter/radviewer-starter.drift.npz``).
  None (and why) when there is none: its reports then say "unavailable", never a zero.
- :func:`drift_reference_save`: log a reference to a version's run (training does this
  itself; ``manage.py build_drift_reference`` for versions registered before).
- :func:`drift_check_run` (beat task ``mlcore.drift_check``): for every version holding an
  alias, the newest ``DRIFT_WINDOW`` observations against the reference; one
  ``DriftReport`` per detector. A window with nothing new since the last report is not
  tested again. An alarm writes an audit event and calls the registered alarm hooks
  (:func:`drift_alarm_hook_register`; continuous training can start a pipeline from one).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from mlcore.ml.classes import CLASS_KEYS
from mlcore.models import DriftObservation, DriftReport, ModelVersion
from mlcore.selectors import alias_map
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

if TYPE_CHECKING:
    from mlcore.ml.drift import DriftReference
    from mlcore.services.inference import TriageOutput

log = logging.getLogger(__name__)

DETECTORS = ("mmd", "ks", "label_shift")  # mlcore.ml.drift.DETECTORS, without importing scipy here
OUT_OF_SCOPE = "out_of_scope"
ARTIFACT_PATH = "drift/reference.npz"
STARTER_DIR = Path(__file__).resolve().parents[1] / "starter"
STARTER_FILE = STARTER_DIR / "radviewer-starter.pt"
STARTER_REFERENCE = STARTER_DIR / "radviewer-starter.drift.npz"
CHECKED_ALIASES = ("production", "canary", "candidate")
# Observations a version keeps once tested: this many windows' worth (the reports keep the
# verdicts; older vectors are never read again).
KEEP_WINDOWS = 5


class DriftError(ValueError):
    """Bad input to a drift service; the message says what is wrong."""


# -- observations ----------------------------------------------------------------------------
def drift_observation_record(*, ref: str, output: TriageOutput) -> DriftObservation | None:
    """Keep the drift vector and served category of one prediction (None when the output
    carries no drift vector, e.g. a model path that does not compute it)."""
    if not ref or len(ref) > 100:
        raise DriftError(f"ref must be 1..100 characters, got {ref!r}")
    data = output.drift_features
    if not data:
        return None
    if len(data) % 4 or len(data) // 4 <= 20:
        raise DriftError(f"drift features of {len(data)} bytes are not a float32 vector of 20 "
                         "image features and an embedding")
    if output.out_of_scope or not output.top_class:
        category = OUT_OF_SCOPE
    elif output.top_class in CLASS_KEYS:
        category = output.top_class
    else:
        raise DriftError(f"unknown class {output.top_class!r}; accepted: {', '.join(CLASS_KEYS)}")
    obs, _ = DriftObservation.objects.get_or_create(
        ref=ref, defaults={"model_name": output.model_name, "model_version": output.model_version,
                           "arm": output.arm, "features": bytes(data), "category": category})
    return obs


def drift_observations_prune(*, name: str, version: str, keep: int) -> int:
    """Delete a version's observations older than its newest ``keep``; returns how many."""
    if keep < 1:
        raise DriftError(f"keep must be at least 1, got {keep}")
    cutoff = (DriftObservation.objects.filter(model_name=name, model_version=version)
              .order_by("-id").values_list("id", flat=True)[keep - 1:keep].first())
    if cutoff is None:
        return 0
    deleted, _ = DriftObservation.objects.filter(model_name=name, model_version=version,
                                                 id__lt=cutoff).delete()
    return deleted


# -- references ------------------------------------------------------------------------------
def _cache_path(name: str, version: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path(settings.VAR_DIR) / "drift" / "reference" / safe / f"{version}.npz"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def drift_reference_for(*, name: str, version: str) -> tuple[DriftReference | None, str]:
    """``(reference, "")`` or ``(None, why there is none)``."""
    from mlcore.ml.drift import DriftReference, ReferenceError  # numpy/scipy: checks only

    cached = _cache_path(name, version)
    if cached.is_file():
        try:
            return DriftReference.load(cached), ""
        except ReferenceError as exc:
            log.warning("dropping an unreadable cached drift reference: %s", exc)
            cached.unlink(missing_ok=True)
    mv = ModelVersion.objects.filter(name=name, version=version).first()
    if mv is None:
        return None, f"v{version} of {name!r} is not in the registry mirror"
    problem = ""
    if mv.run_id:
        from mlcore.ml import tracking  # MLflow: only when the cache misses

        try:
            tracking.configure(settings.MLFLOW_TRACKING_URI)
            data = tracking.read_artifact_bytes(mv.run_id, ARTIFACT_PATH)
        except Exception as exc:  # the tracking server may be down: report, retry next run
            return None, f"the MLflow run of v{version} could not be read: {type(exc).__name__}: {exc}"
        if data is not None:
            try:
                reference = DriftReference.from_bytes(data, source=f"run {mv.run_id} {ARTIFACT_PATH}")
            except ReferenceError as exc:
                problem = f"; its saved reference is unusable ({exc})"
            else:
                reference.save(cached)
                return reference, ""
    starter_sha = (mv.params or {}).get("starter_sha256")
    if starter_sha and STARTER_REFERENCE.is_file() and STARTER_FILE.is_file() \
            and starter_sha == _sha256(STARTER_FILE):
        try:
            reference = DriftReference.load(STARTER_REFERENCE)
        except ReferenceError as exc:
            problem += f"; the shipped starter reference is unusable ({exc})"
        else:
            if reference.meta.get("bundle_sha256") == starter_sha:
                reference.save(cached)
                return reference, ""
            problem += "; the shipped starter reference belongs to another starter file"
    return None, (f"no drift reference was saved with v{version}{problem} (build one: "
                  f"manage.py build_drift_reference --model-version {version})")


def drift_reference_save(*, name: str, version: str, reference: DriftReference,
                         actor: Any | None = None, actor_label: str = "") -> Path:
    """Log ``reference`` to the version's MLflow run and cache it locally."""
    from mlcore.ml import tracking

    mv = ModelVersion.objects.filter(name=name, version=version).first()
    if mv is None or not mv.run_id:
        raise DriftError(f"v{version} of {name!r} is not in the registry mirror (or has no run)")
    if reference.n < 20:
        raise DriftError(f"a reference of {reference.n} images is too small")
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    tracking.log_bytes(reference.to_bytes(), ARTIFACT_PATH, run_id=mv.run_id)
    path = reference.save(_cache_path(name, version))
    audit_event_create(actor=actor, actor_label=actor_label or ("" if actor else "system"),
                       action=AuditAction.DRIFT_REFERENCE_SAVED, obj=mv,
                       details={"name": name, "version": version, "images": reference.n,
                                "split": reference.meta.get("split", "")})
    return path


# -- checks ----------------------------------------------------------------------------------
_alarm_hooks: list[Callable[[DriftReport], None]] = []


def drift_alarm_hook_register(hook: Callable[[DriftReport], None]) -> Callable[[DriftReport], None]:
    """Call ``hook(report)`` after each alarmed report is committed (e.g. continuous
    training's trigger). A failing hook is logged and never undoes the report."""
    if hook not in _alarm_hooks:
        _alarm_hooks.append(hook)
    return hook


def drift_alarm_hook_unregister(hook: Callable[[DriftReport], None]) -> None:
    if hook in _alarm_hooks:
        _alarm_hooks.remove(hook)


def _fire_hooks(report_ids: list[int]) -> None:
    for report in DriftReport.objects.filter(pk__in=report_ids).order_by("id"):
        for hook in list(_alarm_hooks):
            try:
                hook(report)
            except Exception:  # a hook's failure must not undo or block the check
                log.exception("drift alarm hook %r failed for report %s", hook, report.pk)


def _versions_to_check(name: str) -> list[str]:
    aliases = alias_map(name=name)
    out: list[str] = []
    for alias in CHECKED_ALIASES:
        version = aliases.get(alias)
        if version and version not in out:
            out.append(version)
    return out


def drift_check_run(*, name: str | None = None, versions: Sequence[str] | None = None,
                    window: int | None = None, alpha: float | None = None,
                    permutations: int | None = None, seed: int | None = None,
                    force: bool = False) -> list[DriftReport]:
    """Check every version holding an alias (or ``versions``); returns the reports written."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    window = int(window if window is not None else settings.DRIFT_WINDOW)
    alpha = float(alpha if alpha is not None else settings.DRIFT_ALPHA)
    permutations = int(permutations if permutations is not None else settings.DRIFT_PERMUTATIONS)
    if window < 20:
        raise DriftError(f"window must be at least 20 studies, got {window}")
    if not 0.0 < alpha < 0.5:
        raise DriftError(f"alpha must be between 0 and 0.5, got {alpha}")
    if permutations < 19:
        raise DriftError(f"permutations must be at least 19, got {permutations}")
    reports: list[DriftReport] = []
    for version in (list(versions) if versions is not None else _versions_to_check(name)):
        reports += _check_version(name=name, version=str(version), window=window, alpha=alpha,
                                  permutations=permutations, seed=seed, force=force)
    return reports


def _check_version(*, name: str, version: str, window: int, alpha: float, permutations: int,
                   seed: int | None, force: bool) -> list[DriftReport]:
    import numpy as np

    rows = list(DriftObservation.objects.filter(model_name=name, model_version=version)
                .order_by("-id").values_list("id", "features", "category")[:window])
    window_end = rows[0][0] if rows else 0
    last = DriftReport.objects.filter(name=name, model_version=version).order_by("-id").first()
    if (not force and last is not None and last.window_end == window_end
            and last.window_target == window and last.status != DriftReport.Status.ERROR):
        return []  # nothing new since the last check
    common = {"name": name, "model_version": version, "alpha": alpha, "window_target": window,
              "window_end": window_end, "window_size": len(rows)}
    t0 = time.perf_counter()
    reference, why = drift_reference_for(name=name, version=version)
    if reference is None:
        return _write(common, DriftReport.Status.UNAVAILABLE, f"unavailable: {why}")
    if len(rows) < window:
        return _write(common, DriftReport.Status.WAITING,
                      f"waiting: needs {window} studies, has {len(rows)}")
    from mlcore.ml.drift import ReferenceError, WindowTooSmall, check_window

    try:
        widths = {len(f) for _, f, _ in rows}
        if len(widths) != 1:
            raise DriftError(f"observations of v{version} have mixed widths {sorted(widths)}")
        vectors = np.stack([np.frombuffer(bytes(f), dtype="<f4") for _, f, _ in rows])
        verdict = check_window(reference, vectors, [c for _, _, c in rows], alpha=alpha,
                               permutations=permutations, seed=seed)
    except WindowTooSmall as exc:
        return _write(common, DriftReport.Status.WAITING, str(exc))
    except (DriftError, ReferenceError, ValueError) as exc:
        log.warning("drift check of %s v%s failed: %s", name, version, exc)
        return _write(common, DriftReport.Status.ERROR, f"{type(exc).__name__}: {exc}")
    duration = (time.perf_counter() - t0) * 1000.0
    drift_observations_prune(name=name, version=version, keep=KEEP_WINDOWS * window)
    reports = []
    with transaction.atomic():
        for result in verdict.results:
            reports.append(DriftReport.objects.create(
                **common, detector=result.detector, status=DriftReport.Status.OK,
                statistic=result.statistic, p_value=result.p_value, alarm=result.alarm,
                message=(f"drift: p = {result.p_value:.3g} < {alpha}" if result.alarm
                         else f"no drift detected: p = {result.p_value:.3g}"),
                details=result.details, duration_ms=duration))
        alarmed = [r for r in reports if r.alarm]
        for r in alarmed:
            audit_event_create(actor=None, actor_label="system", action=AuditAction.DRIFT_ALARM,
                               obj=r, details={"name": name, "version": version,
                                               "detector": r.detector, "p_value": r.p_value,
                                               "window": r.window_size})
        if alarmed:
            ids = [r.pk for r in alarmed]
            transaction.on_commit(lambda: _fire_hooks(ids))
    return reports


def _write(common: dict[str, Any], status: str, message: str) -> list[DriftReport]:
    with transaction.atomic():
        return [DriftReport.objects.create(**common, detector=d, status=status, message=message[:2000])
                for d in DETECTORS]


# -- building references -----------------------------------------------------------------------
def drift_reference_build(*, name: str, version: str, store_uri: str, split: str = "val",
                          actor: Any | None = None, actor_label: str = "") -> DriftReference:
    """Compute a registered version's reference on ``split`` of a dataset store (the split
    the version was calibrated on: its ``val``) and save it with the version."""
    from mlcore.ml import tracking
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.data import open_store
    from mlcore.ml.drift.reference import ReferenceError, reference_from_store

    if not ModelVersion.objects.filter(name=name, version=version).exists():
        raise DriftError(f"v{version} of {name!r} is not in the registry mirror")
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    bundle_dir = tracking.download_bundle(
        f"models:/{name}/{version}", Path(settings.VAR_DIR) / "model-cache" / name / version,
        tracking_uri=settings.MLFLOW_TRACKING_URI)
    bundle = ModelBundle.load(bundle_dir)
    store = open_store(store_uri)
    try:
        reference = reference_from_store(bundle, store, split,
                                         meta={"version": version, "store_uri": store_uri})
    except (ReferenceError, ValueError) as exc:
        raise DriftError(str(exc)) from None
    drift_reference_save(name=name, version=version, reference=reference, actor=actor,
                         actor_label=actor_label)
    return reference


def starter_drift_reference_build(*, data_dir: Path | str, store_uri: str,
                                  out: Path | str = STARTER_REFERENCE) -> DriftReference:
    """The shipped starter model's reference, from the real-cxr ``val`` split it was
    calibrated on (the store is rebuilt from ``data_dir`` with the same seed when missing;
    its manifest hash must be the one the model names). Writes ``out`` (tens of KB)."""
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.drift.reference import reference_from_store
    from mlcore.services.starter import starter_dataset

    bundle = ModelBundle.load_file(STARTER_FILE)
    store = starter_dataset(data_dir=data_dir, store_uri=store_uri)
    if store.manifest_hash() != bundle.metadata.get("manifest_hash"):
        raise DriftError(f"{store!r} is not the data set the starter model was trained on "
                         "(manifest hash differs)")
    reference = reference_from_store(bundle, store, "val",
                                     meta={"bundle_sha256": _sha256(STARTER_FILE),
                                           "data": "real-cxr"})
    reference.save(out)
    return reference
