"""The starter model: the real-data model that ships in the repository (``mlcore/starter/``,
card in ``docs/model-card.md``) and becomes version 1 ``production`` on a fresh install, in
seconds and without training.

Registration loads and checks the whole file first (``ModelBundle.load_file``: readable,
this code's nine classes, a known variant whose weights fit), so a truncated, corrupt or
mismatched file registers nothing and the error names the file and the fault. The version's
MLflow run carries the evaluation the file was shipped with (val, test and final_eval, as
logged when it was trained), so the ML pages show its figures.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mlcore.ml.data import build_dataset, open_store, scan_plain_tree
from mlcore.services.registry import registry_sync
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

log = logging.getLogger(__name__)
STARTER_FILE = Path(__file__).resolve().parents[1] / "starter" / "radviewer-starter.pt"
STARTER_RUN_NAME = "starter-model"


class StarterModelError(RuntimeError):
    """The starter file cannot be registered; the message says which file and why."""


@dataclass(frozen=True)
class StarterOutcome:
    name: str
    version: str
    registered: bool  # False: a production model already existed, nothing was done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def starter_model_register(*, path: Path | str = STARTER_FILE, name: str | None = None,
                           force: bool = False) -> StarterOutcome:
    """Register the starter file as a new version of ``name`` with alias ``production``,
    unless a production version exists already (then nothing happens, unless ``force``)."""
    # MLflow and torch are imported here, not at module level: web processes import the
    # services package and must not pay for them.
    from mlcore.ml import tracking
    from mlcore.ml.bundle import BundleFileError, ModelBundle

    name = name or settings.MLFLOW_REGISTERED_MODEL
    uri = settings.MLFLOW_TRACKING_URI
    tracking.configure(uri)
    current = tracking.get_version_by_alias(name, "production", tracking_uri=uri)
    if current and not force:
        registry_sync(name=name)
        return StarterOutcome(name=name, version=current, registered=False)
    path = Path(path)
    try:
        bundle = ModelBundle.load_file(path)
    except BundleFileError as exc:
        raise StarterModelError(f"the starter model file cannot be used: {exc}") from None
    version = _log_and_register(bundle, path=path, name=name)
    tracking.set_alias(name, "production", version)
    registry_sync(name=name)
    audit_event_create(
        actor=None, actor_label="system:starter_model", action=AuditAction.MODEL_REGISTERED,
        object_type="mlcore.modelversion", object_id=f"{name}/{version}",
        details={"alias": "production", "previous_version": current, "source": str(path.name),
                 "data": "real-cxr (real images)", "trained_at": bundle.metadata.get("trained_at")},
    )
    return StarterOutcome(name=name, version=version, registered=True)


def _log_and_register(bundle, *, path: Path, name: str) -> str:
    # MLflow and torch: see starter_model_register
    from mlcore.ml import tracking
    from mlcore.ml.evaluation.metrics import EvaluationReport
    from mlcore.ml.evaluation.runner import log_evaluation

    meta = bundle.metadata
    params = {
        "model_name": bundle.model_name,
        "model_overrides": bundle.model_overrides,
        "preprocess": bundle.preprocess.to_dict(),
        "recipe": meta.get("recipe", {}),
        "starter_file": path.name,
        "starter_sha256": _sha256(path),
        "trained_at": meta.get("trained_at", "unknown"),
        "trained_commit": meta.get("git_commit", "unknown"),
        "trained_on": meta.get("trained_on", "unknown"),
        "manifest_hash": meta.get("manifest_hash", "unknown"),
        "split_counts": meta.get("split_counts", {}),
    }
    metrics = {f"calibration_{k}": v for k, v in (meta.get("calibration") or {}).items()
               if isinstance(v, int | float)}
    if bundle.ood is not None:
        metrics["ood_threshold"] = bundle.ood.threshold
    metrics["scope_threshold"] = bundle.scope_rule.threshold
    tags = {"radviewer.backend": "starter", "radviewer.model_name": bundle.model_name,
            "radviewer.data_synthetic": "true" if meta.get("data_synthetic") else "false"}
    with tracking.start_run(run_name=STARTER_RUN_NAME, tags=tags, log_system_metrics=False) as run:
        run_id = run.info.run_id
        tracking.log_params(params, run_id=run_id)
        tracking.log_metrics(metrics, run_id=run_id)
        for prefix, doc in (meta.get("evaluation") or {}).items():
            log_evaluation(EvaluationReport.from_dict(doc), run_id, prefix=prefix)
        with tempfile.TemporaryDirectory(prefix="radviewer-starter-") as tmp:
            bundle_dir = bundle.save(Path(tmp) / "bundle")
            model_uri, version = tracking.log_model_bundle(
                bundle_dir, image_size=bundle.image_size, class_keys=bundle.class_keys,
                preprocess=bundle.preprocess.to_dict(), temperature=bundle.temperature,
                registered_model_name=name)
        tracking.client().set_tag(run_id, "radviewer.model_uri", model_uri)
        _log_starter_drift_reference(path, run_id)
    if version is None:
        raise StarterModelError(f"MLflow did not register {path} as a version of {name!r}")
    return version


def _log_starter_drift_reference(path: Path, run_id: str) -> None:
    """The shipped drift reference (``radviewer-starter.drift.npz``, from real-cxr val; see
    ``manage.py build_drift_reference --starter``) goes to the run when it belongs to this
    file; without it the version's drift checks say "unavailable"."""
    from mlcore.ml import tracking
    from mlcore.ml.drift import DriftReference, ReferenceError
    from mlcore.services.drift import ARTIFACT_PATH, STARTER_REFERENCE

    if not STARTER_REFERENCE.is_file():
        return
    try:
        reference = DriftReference.load(STARTER_REFERENCE)
    except ReferenceError as exc:
        log.warning("the shipped drift reference is unusable: %s", exc)
        return
    if reference.meta.get("bundle_sha256") == _sha256(path):
        tracking.log_bytes(reference.to_bytes(), ARTIFACT_PATH, run_id=run_id)


# The recipe of the shipped file is TrainConfig's defaults (the real-data recipe, with the
# default variant at its deployed 128 px) plus a stated precision, so a CPU reproduces it, and
# an exponential moving average of the weights from epoch 10 (decay 0.998 per step, ~9 epochs'
# memory): on final_eval it took lung-opacity and No-finding sensitivity from 0.833 / 0.847 to
# 0.850 / 0.864 (docs/benchmarks.md). The pipeline retrains with the production version's own
# recorded recipe, so continuous training keeps it.
STARTER_PRECISION = "32-true"
STARTER_EMA = {"ema_decay": 0.998, "ema_start_epoch": 10}
STARTER_DATA = Path(settings.BASE_DIR).parent / "shared" / "data" / "real-cxr"


@dataclass(frozen=True)
class StarterBuild:
    file: Path | None  # the file written, or None when the old one was better and kept
    final_eval_macro_f1: float | None
    previous_final_eval_macro_f1: float | None
    version: str | None
    figures: dict


def starter_dataset(*, data_dir: Path | str, store_uri: str, seed: int = 42):
    """The real-cxr store the starter trains on, built from ``data_dir`` when missing
    (de-duplication and the patient-level split, seeded)."""
    store = open_store(store_uri)
    if not store.manifest():
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise StarterModelError(f"{data_dir} is not a directory: the starter model trains on the "
                                    "real-cxr tree (shared/data/real-cxr)")
        build_dataset(scan_plain_tree(data_dir), store, seed=seed)
    return store


def _final_eval_f1(figures: dict | None) -> float | None:
    try:
        return figures["splits"]["final_eval"]["macro_f1_cxr4"][0]
    except (KeyError, TypeError, IndexError):
        return None


def starter_model_build(*, data_dir: Path | str = STARTER_DATA, store_uri: str | None = None,
                        out: Path | str = STARTER_FILE, force: bool = False,
                        on_epoch=None, **recipe) -> StarterBuild:
    """Train the starter recipe on real-cxr (about 50 minutes on 2 CPU cores), register the
    run, compute the card's figures, and write ``out`` only if the new model is better on
    ``final_eval`` (CXR macro-F1) than the file there (or ``force``). ``recipe`` overrides
    TrainConfig fields (epochs, seed, ...)."""
    # torch, Lightning and MLflow: see starter_model_register
    import platform

    import torch

    from mlcore.ml.bundle import BundleFileError, ModelBundle
    from mlcore.ml.evaluation.card import card_figures
    from mlcore.services.training import model_train, train_config

    store_uri = store_uri or str(settings.VAR_DIR / "datasets" / "real-cxr")
    store = starter_dataset(data_dir=data_dir, store_uri=store_uri)
    recipe.setdefault("precision", STARTER_PRECISION)
    for name, value in STARTER_EMA.items():
        recipe.setdefault(name, value)
    config = train_config(store_uri=store_uri, run_name="starter-candidate", log_system_metrics=False,
                          **recipe)
    result = model_train(config=config, actor_label="cli:build_starter_model", on_epoch=on_epoch,
                         details={"data": "real-cxr"})
    bundle = ModelBundle.load(result.bundle_dir)
    figures = card_figures(bundle, store)
    bundle.metadata["card"] = figures
    bundle.metadata["trained_on"] = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    new = _final_eval_f1(figures)
    out = Path(out)
    previous = None
    if out.is_file():
        try:
            previous = _final_eval_f1(ModelBundle.load_file(out).metadata.get("card"))
        except BundleFileError:
            previous = None  # a broken file is always replaced
    better = previous is None or (new is not None and new > previous)
    written = bundle.save_file(out) if (better or force) else None
    return StarterBuild(file=written, final_eval_macro_f1=new, previous_final_eval_macro_f1=previous,
                        version=result.model_version, figures=figures)


def _shipped_with_store(path: Path, data_dir: Path | str, store_uri: str | None):
    from mlcore.ml.bundle import BundleFileError, ModelBundle

    try:
        bundle = ModelBundle.load_file(path)
    except BundleFileError as exc:
        raise StarterModelError(f"the starter model file cannot be used: {exc}") from None
    store = starter_dataset(data_dir=data_dir, store_uri=store_uri or str(settings.VAR_DIR / "datasets" / "real-cxr"))
    if store.manifest_hash() != bundle.metadata.get("manifest_hash"):
        raise StarterModelError(f"{store!r} is not the data set {path.name} was trained on (manifest hash differs)")
    return bundle, store


def starter_ood_refit(*, path: Path | str = STARTER_FILE, data_dir: Path | str = STARTER_DATA,
                      store_uri: str | None = None) -> dict:
    """Refit the out-of-scope detector of the shipped file on its own weights, after the
    detector's input descriptor changed (the weights, temperature and scope rule stay; a
    full ``starter_model_build`` fits the same detector at the end of training). Recomputes
    the card's figures and rewrites the file; returns the figures."""
    import time

    from mlcore.ml import tracking
    from mlcore.ml.evaluation.card import card_figures
    from mlcore.ml.evaluation.ood import OODDetector
    from mlcore.ml.evaluation.runner import bundle_outputs

    path = Path(path)
    bundle, store = _shipped_with_store(path, data_dir, store_uri)
    model = bundle.build()
    out_train, y_train = bundle_outputs(bundle, store, "train", model=model)
    out_val, _ = bundle_outputs(bundle, store, "val", model=model)
    bundle.ood = OODDetector.fit(train_embeddings=out_train.embeddings, train_descriptors=out_train.descriptors,
                                 train_labels=y_train, val_embeddings=out_val.embeddings,
                                 val_descriptors=out_val.descriptors)
    bundle.metadata["ood_refit"] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "git_commit": tracking.git_commit()}
    figures = card_figures(bundle, store)
    bundle.metadata["card"] = figures
    bundle.save_file(path)
    return figures


def starter_figures_refresh(*, path: Path | str = STARTER_FILE, data_dir: Path | str = STARTER_DATA,
                            store_uri: str | None = None) -> dict:
    """Recompute the card's figures stored in the shipped file when the figures gained a field
    (the ECE sampling floor, say): weights, temperature, scope rule and detector stay as they
    are, so every served probability does too. Records when and at which commit; rewrites the
    file; returns the figures."""
    import time

    from mlcore.ml import tracking
    from mlcore.ml.evaluation.card import card_figures

    path = Path(path)
    bundle, store = _shipped_with_store(path, data_dir, store_uri)
    figures = card_figures(bundle, store)
    bundle.metadata["card"] = figures
    bundle.metadata["figures_recomputed"] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                             "git_commit": tracking.git_commit()}
    bundle.save_file(path)
    return figures
