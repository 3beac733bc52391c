"""Dataset versions as writes: register an existing store, request and run an import.

One path for the console's import form, ``manage.py import_dataset`` and the worker: the
request validates everything it can see on this server (folder, format, slug, destination,
that the folder holds images at all) before any row exists, so bad input leaves nothing
behind; the run (``mlcore.dataset_import`` on the training queue) decodes, de-duplicates,
splits and writes, reporting progress on the row.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlcore.ml import data
from mlcore.ml.data import Candidate, DatasetStore, LocalDatasetStore, ManifestRow, open_store
from mlcore.models import DatasetVersion
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

IMPORT_FORMATS: dict[str, str] = {
    "plain": "<class-key>/<image> folders, optional manifest.csv (file, class, patient_id, "
             "original_dataset): real-cxr, a hospital's own export",
    "covid19-radiography": "COVID-19 Radiography Database (COVID/, Lung_Opacity/, Normal/, "
                           "Viral Pneumonia/)",
    "tb-cxr": "TB Chest X-ray Database (Normal/, Tuberculosis/)",
    "kermany-oct": "Kermany OCT2017 (train|test|val/CNV|DME|DRUSEN|NORMAL/)",
}
CURRENT_SLUG = "current"
# Evaluation-only sets hold everything in the split nothing ever trains on.
EVALUATION_SPLIT = "final_eval"
PROGRESS_INTERVAL_S = 1.0
# No heartbeat for this long while importing: the worker is gone (decoding writes one a second).
STALE_AFTER_S = 15 * 60
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
Progress = Callable[[str, int, int], None]


def canonical_store_uri(uri: str | Path) -> str:
    """One spelling per store (``file:///abs`` or ``s3://bucket/prefix``), so that the
    unique ``store_uri`` really means one row per store however the path was written."""
    text = str(uri)
    if urlparse(text).scheme == "s3":
        return text.rstrip("/")
    store = open_store(text)
    return store.uri


def _audit_actor(actor: Any, fallback: str) -> tuple[Any, str]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return user, ("" if user else (str(actor) if isinstance(actor, str) and actor else fallback))


# --- registering an existing store ----------------------------------------------------------


def dataset_version_register(
    *,
    store_uri: str,
    slug: str,
    kind: str = DatasetVersion.Kind.TRAINING,
    actor: Any = None,
    description: str = "",
) -> DatasetVersion:
    """Make an existing store known to the app (``ready``), its split report computed from
    the manifest. Idempotent on ``store_uri``: a known store gets its report and hash
    refreshed and keeps its slug."""
    _check_slug(slug)
    _check_kind(kind)
    uri = canonical_store_uri(store_uri)
    store = open_store(uri)
    report = store.split_report().to_dict()
    manifest_hash = store.manifest_hash()
    with transaction.atomic():
        existing = DatasetVersion.objects.select_for_update().filter(store_uri=uri).first()
        if existing is not None:
            if existing.status == DatasetVersion.Status.READY:
                existing.report, existing.manifest_hash = report, manifest_hash
                existing.save(update_fields=["report", "manifest_hash"])
            return existing
        if DatasetVersion.objects.filter(slug=slug).exists():
            raise ValidationError({"slug": f"the slug {slug!r} is already taken by another store"})
        dataset = DatasetVersion.objects.create(
            slug=slug, kind=kind, status=DatasetVersion.Status.READY, store_uri=uri,
            description=description, manifest_hash=manifest_hash, report=report,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            finished_at=timezone.now(),
        )
        user, label = _audit_actor(actor, "system")
        audit_event_create(
            actor=user, actor_label=label, action=AuditAction.DATASET_REGISTERED, obj=dataset,
            details={"slug": slug, "store_uri": uri, "kind": kind, "manifest_hash": manifest_hash,
                     "images": report.get("total", 0)},
        )
    return dataset


def dataset_version_ensure(*, store_uri: str, actor: Any = None,
                           description: str = "registered from the command line") -> DatasetVersion:
    """The DatasetVersion of ``store_uri`` (a path and its ``file://`` URI are one store),
    registered as a ready training set under the slug ``store-<hash>`` when the app does not
    know it yet (``manage.py train_model --store``, ``evaluate_model --store``)."""
    uri = canonical_store_uri(store_uri)
    for known in DatasetVersion.objects.only("pk", "store_uri"):
        if known.store_uri == uri or canonical_store_uri(known.store_uri) == uri:
            return DatasetVersion.objects.get(pk=known.pk)
    slug = "store-" + hashlib.sha256(uri.encode()).hexdigest()[:10]
    return dataset_version_register(store_uri=uri, slug=slug, actor=actor, description=description)


def dataset_version_ensure_current() -> DatasetVersion:
    """The app's own store (``DATASET_STORE_URI``, where confirmed corrections land) as the
    dataset version ``current``; registered on first need, otherwise returned as it is."""
    uri = canonical_store_uri(settings.DATASET_STORE_URI)
    found = DatasetVersion.objects.filter(store_uri=uri).first()
    if found is not None:
        return found
    slug = CURRENT_SLUG
    if DatasetVersion.objects.filter(slug=slug).exists():
        # RADVIEWER_DATASET_URI now names another store; the old row keeps its name and data
        slug = f"{CURRENT_SLUG}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"
    try:
        return dataset_version_register(
            store_uri=uri, slug=slug, actor="system:dataset_current",
            description="The app's dataset store: training data and the readers' confirmed "
                        "corrections (feedback).",
        )
    except IntegrityError:  # a concurrent first request registered it
        return DatasetVersion.objects.get(store_uri=uri)


def dataset_version_refresh(*, dataset: DatasetVersion) -> DatasetVersion:
    """Recount a ready store whose manifest changed since (feedback rows were added)."""
    if dataset.status != DatasetVersion.Status.READY:
        return dataset
    store = open_store(dataset.store_uri)
    manifest_hash = store.manifest_hash()
    if manifest_hash != dataset.manifest_hash:
        dataset.report = store.split_report().to_dict()
        dataset.manifest_hash = manifest_hash
        dataset.save(update_fields=["report", "manifest_hash"])
    return dataset


# --- import: validation ---------------------------------------------------------------------


def _check_slug(slug: str) -> None:
    if not _SLUG.match(slug or ""):
        raise ValidationError({"slug": f"{slug!r} is not a usable name: use 1-80 lowercase letters, "
                                       "digits, '-' or '_', starting with a letter or digit"})


def _check_kind(kind: str) -> None:
    if kind not in DatasetVersion.Kind.values:
        raise ValidationError({"kind": f"unknown kind {kind!r}; accepted: "
                                       f"{', '.join(DatasetVersion.Kind.values)}"})


def resolve_source(source_path: str | Path) -> Path:
    """A folder on this server; relative paths are taken from the project folder (where
    ``make run`` runs), so ``../shared/data/real-cxr`` means the same from the UI and CLI."""
    text = str(source_path).strip()
    if not text:
        raise ValidationError({"source_path": "give the folder to import"})
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    path = path.resolve()
    if not path.exists():
        raise ValidationError({"source_path": f"there is no folder {str(path)!r} on this server"})
    if not path.is_dir():
        raise ValidationError({"source_path": f"{str(path)!r} is a file, not a folder"})
    return path


def scan_source(source: Path, source_format: str, *, manifest_csv: str | Path | None = None) -> list[Candidate]:
    """The scanner's candidates; ``ValidationError`` naming what does not fit the format."""
    if source_format not in IMPORT_FORMATS:
        raise ValidationError({"source_format": f"unknown format {source_format!r}; accepted: "
                                                f"{', '.join(IMPORT_FORMATS)}"})
    try:
        if source_format == "plain":
            return data.scan_plain_tree(source, manifest_csv=manifest_csv)
        scanner = {
            "covid19-radiography": data.scan_covid19_radiography,
            "tb-cxr": data.scan_tb_cxr,
            "kermany-oct": data.scan_kermany_oct,
        }[source_format]
        return scanner(source)
    except (ValueError, OSError) as exc:
        raise ValidationError({"source_path": f"{source_format}: {exc}"}) from None


def _destination(slug: str) -> str:
    """Local stores under ``VAR_DIR/datasets/<slug>``; with an S3 ``DATASET_STORE_URI``,
    the prefix beside it (``s3://bucket/datasets/current`` -> ``s3://bucket/datasets/<slug>``)."""
    current = str(settings.DATASET_STORE_URI)
    parsed = urlparse(current)
    if parsed.scheme == "s3":
        parent = parsed.path.strip("/").rpartition("/")[0]
        return f"s3://{parsed.netloc}/{parent + '/' if parent else ''}{slug}"
    return LocalDatasetStore(Path(settings.VAR_DIR) / "datasets" / slug).uri


def _reusable(dataset: DatasetVersion) -> bool:
    """A failed import, or a registered store that is still empty (``current`` before any
    data), may be imported into again under the same slug; anything else keeps its slug."""
    if dataset.status == DatasetVersion.Status.FAILED:
        return True
    return dataset.status == DatasetVersion.Status.READY and not open_store(dataset.store_uri).manifest()


def _check_numbers(seed: int, near_dup_hamming: int, max_side: int | None) -> None:
    errors = {}
    if not 0 <= seed <= 2**31 - 1:
        errors["seed"] = f"seed must be between 0 and {2**31 - 1}, got {seed}"
    if not 0 <= near_dup_hamming <= 64:
        errors["near_dup_hamming"] = ("near_dup_hamming is the largest dHash distance (of 256 bits) "
                                      f"that counts as a duplicate: give 0 to 64, got {near_dup_hamming}")
    if max_side is not None and not 32 <= max_side <= 4096:
        errors["max_side"] = f"max_side must be between 32 and 4096 pixels, got {max_side}"
    if errors:
        raise ValidationError(errors)


# --- import: request and run ----------------------------------------------------------------


def dataset_import_request(
    *,
    actor: Any,
    source_path: str | Path,
    source_format: str,
    slug: str,
    kind: str = DatasetVersion.Kind.TRAINING,
    seed: int = 42,
    near_dup_hamming: int = 12,
    max_side: int | None = 512,
    manifest_csv: str | Path | None = None,
    store_uri: str | None = None,
    enqueue: bool = True,
) -> DatasetVersion:
    """Validate an import and write its ``queued`` row; the worker runs it on commit.

    ``store_uri`` (the CLI's ``--dest``) overrides the destination derived from the slug.
    ``enqueue=False`` is for the CLI, which runs :func:`dataset_import_run` in-process.
    Raises ``ValidationError`` (keyed by field) and writes nothing on bad input.
    """
    _check_slug(slug)
    _check_kind(kind)
    _check_numbers(seed, near_dup_hamming, max_side)
    source = resolve_source(source_path)
    if manifest_csv is not None and not Path(manifest_csv).is_file():
        raise ValidationError({"manifest_csv": f"there is no manifest file {str(manifest_csv)!r}"})
    candidates = scan_source(source, source_format, manifest_csv=manifest_csv)
    if not candidates:
        raise ValidationError({"source_path": f"{str(source)!r} holds no images in the "
                                              f"{source_format} layout ({IMPORT_FORMATS[source_format]})"})

    with transaction.atomic():
        dataset = DatasetVersion.objects.select_for_update().filter(slug=slug).first()
        if dataset is not None and not _reusable(dataset):
            raise ValidationError({"slug": f"a dataset version named {slug!r} already exists; "
                                           "choose another name"})
        uri = canonical_store_uri(store_uri) if store_uri else (
            dataset.store_uri if dataset is not None else _destination(slug))
        other = DatasetVersion.objects.filter(store_uri=uri).exclude(slug=slug).first()
        if other is not None:
            raise ValidationError({"slug": f"{uri} is already the store of dataset version "
                                           f"{other.slug!r}"})
        if open_store(uri).manifest():
            raise ValidationError({"slug": f"{uri} already holds a dataset (stores are immutable "
                                           "once built); choose another name"})
        fields = {
            "kind": kind, "status": DatasetVersion.Status.QUEUED, "store_uri": uri,
            "source_path": str(source), "source_format": source_format,
            "options": {"seed": seed, "near_dup_hamming": near_dup_hamming, "max_side": max_side,
                        # absolute: the worker runs elsewhere than the request's folder
                        "manifest_csv": str(Path(manifest_csv).resolve()) if manifest_csv else ""},
            "manifest_hash": "", "report": {}, "progress_done": 0,
            "progress_total": len(candidates), "failure_reason": "", "finished_at": None,
            "heartbeat_at": None,
            "created_by": actor if getattr(actor, "is_authenticated", False) else None,
        }
        try:
            if dataset is None:
                dataset = DatasetVersion.objects.create(slug=slug, **fields)
            else:
                for name, value in fields.items():
                    setattr(dataset, name, value)
                dataset.save()
        except IntegrityError:  # another admin took the slug a moment ago
            raise ValidationError({"slug": f"a dataset version named {slug!r} already exists; "
                                           "choose another name"}) from None
        user, label = _audit_actor(actor, "system")
        audit_event_create(
            actor=user, actor_label=label, action=AuditAction.DATASET_IMPORT_REQUESTED, obj=dataset,
            details={"slug": slug, "kind": kind, "source_path": str(source), "format": source_format,
                     "store_uri": uri, "candidates": len(candidates), **dataset.options},
        )
        if enqueue:
            enqueue_on_commit("mlcore.dataset_import", dataset_id=dataset.pk)
    return dataset


class _ProgressWriter:
    """``build_dataset``'s progress callback: writes the row at most once a second (and at
    the end of each stage), with a heartbeat, so the page can show a live bar."""

    def __init__(self, dataset_id: int, total: int, also: Progress | None) -> None:
        self.dataset_id, self.total, self.also = dataset_id, total, also
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.also is not None:
            self.also(stage, done, total)
        now = time.monotonic()
        if done < total and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        decoded = done if stage == "decode" else self.total
        DatasetVersion.objects.filter(pk=self.dataset_id).update(
            progress_done=min(decoded, self.total), progress_total=self.total,
            heartbeat_at=timezone.now(),
            report={"stage": stage, "stage_done": done, "stage_total": total},
        )


def dataset_import_run(*, dataset_id: int, progress: Progress | None = None) -> DatasetVersion:
    """Run a queued import: ``importing`` with progress, then ``ready`` with the split report
    (skipped and dropped files with their reasons) or ``failed`` with the reason.

    Idempotent: a finished row is returned as it is; a run that died after the store's
    manifest was written finishes from the store instead of building again.
    """
    with transaction.atomic():
        dataset = DatasetVersion.objects.select_for_update().get(pk=dataset_id)
        if dataset.status in (DatasetVersion.Status.READY, DatasetVersion.Status.FAILED):
            return dataset
        dataset.status = DatasetVersion.Status.IMPORTING
        dataset.heartbeat_at = timezone.now()
        dataset.save(update_fields=["status", "heartbeat_at"])
    try:
        store = open_store(dataset.store_uri)
        if not store.manifest():
            _build(dataset, store, progress)
        report = store.split_report().to_dict()
        manifest_hash = store.manifest_hash()
    except (ValidationError, ValueError, OSError) as exc:
        reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        return _import_failed(dataset_id, reason)
    except Exception as exc:  # the row must never stay "importing" (incl. the soft time limit)
        logger.exception("dataset import %s failed", dataset_id)
        _import_failed(dataset_id, f"unexpected error: {type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        dataset = DatasetVersion.objects.select_for_update().get(pk=dataset_id)
        dataset.status = DatasetVersion.Status.READY
        dataset.report = report
        dataset.manifest_hash = manifest_hash
        dataset.progress_done = dataset.progress_total
        dataset.finished_at = dataset.heartbeat_at = timezone.now()
        dataset.save()
        audit_event_create(
            actor=None, actor_label="system:dataset_import", action=AuditAction.DATASET_IMPORTED,
            obj=dataset,
            details={"slug": dataset.slug, "kind": dataset.kind, "images": report["total"],
                     "skipped": len(report["skipped"]), "duplicates_dropped": report["duplicates_dropped"],
                     "manifest_hash": manifest_hash},
        )
    return dataset


def _build(dataset: DatasetVersion, store: DatasetStore, progress: Progress | None) -> None:
    options = dataset.options or {}
    candidates = scan_source(Path(dataset.source_path), dataset.source_format,
                             manifest_csv=options.get("manifest_csv") or None)
    if not candidates:
        raise ValueError(f"{dataset.source_path!r} holds no images any more")
    DatasetVersion.objects.filter(pk=dataset.pk).update(progress_total=len(candidates), progress_done=0)
    single = EVALUATION_SPLIT if dataset.kind == DatasetVersion.Kind.EVALUATION else None
    report = data.build_dataset(
        candidates, store, seed=int(options.get("seed", 42)),
        near_dup_hamming=options.get("near_dup_hamming", 12),
        max_side=options.get("max_side", 512),
        progress=_ProgressWriter(dataset.pk, len(candidates), progress),
        single_split=single,
    )
    if report.total == 0:  # an empty version is no dataset: say why each file was refused
        reasons = "; ".join(f"{path}: {why}" for path, why in (report.skipped + report.dropped)[:5])
        raise ValueError(f"none of the {len(candidates)} files could be imported ({reasons})")


def dataset_imports_fail_stale(*, stale_after_s: int = STALE_AFTER_S) -> list[DatasetVersion]:
    """Imports whose worker stopped reporting (killed, restarted) become ``failed`` with the
    reason instead of showing ``importing`` forever; the slug can then be imported again.
    Queued imports are left alone: they may wait behind a training job on the same queue."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    stale = DatasetVersion.objects.filter(status=DatasetVersion.Status.IMPORTING, heartbeat_at__lt=cutoff)
    return [
        _import_failed(pk, f"the import stopped reporting progress for over {stale_after_s // 60} "
                           "minutes (worker killed or restarted); import it again under the same name")
        for pk in stale.values_list("pk", flat=True)
    ]


def _import_failed(dataset_id: int, reason: str) -> DatasetVersion:
    with transaction.atomic():
        dataset = DatasetVersion.objects.select_for_update().get(pk=dataset_id)
        dataset.status = DatasetVersion.Status.FAILED
        dataset.failure_reason = reason[:2000]
        dataset.finished_at = timezone.now()
        dataset.save(update_fields=["status", "failure_reason", "finished_at"])
        audit_event_create(
            actor=None, actor_label="system:dataset_import", action=AuditAction.DATASET_IMPORT_FAILED,
            obj=dataset, details={"slug": dataset.slug, "reason": dataset.failure_reason},
        )
    return dataset


# --- continuous training: a snapshot of training data + confirmed feedback ------------------


class DatasetStoreUnavailable(RuntimeError):
    """A store could not be read or written (down, unmounted, refused): passing, retried."""


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError,)
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # the s3 extra is not installed: no S3 store can be in use either
        return errors
    return (*errors, BotoCoreError, ClientError)


def dataset_snapshot_create(*, base: DatasetVersion, feedback_store_uri: str, slug: str,
                            lineage: dict[str, Any] | None = None,
                            actor_label: str = "system:pipeline",
                            progress: Callable[[int, int], None] | None = None) -> DatasetVersion:
    """A new, immutable training set: every image of ``base`` (its splits as they are) plus
    the confirmed corrections in the ``feedback`` split of ``feedback_store_uri`` (the app's
    store) and of ``base``, de-duplicated by pixel hash; registered ``ready`` with its hash
    and lineage (base slug and hash, feedback store and hash, counts).

    All or nothing: the images are written first and the manifest last, and the row exists
    only after the manifest; a store that cannot be reached raises
    ``DatasetStoreUnavailable`` and leaves no dataset version (files already copied without a
    manifest are removed where the store is local, and overwritten by the retry otherwise).
    Idempotent on ``slug``: an existing ready version is returned; a destination whose
    manifest was written by a run that died before its row is registered as it is.
    ``progress(done, total)`` is called after each copied image (the caller's heartbeat).
    """
    _check_slug(slug)
    existing = DatasetVersion.objects.filter(slug=slug).first()
    if existing is not None and existing.status == DatasetVersion.Status.READY:
        return existing
    if existing is not None:
        raise ValidationError({"slug": f"dataset version {slug!r} exists and is {existing.status}"})
    if base.status != DatasetVersion.Status.READY or base.kind != DatasetVersion.Kind.TRAINING:
        raise ValidationError({"base": f"dataset version {base.slug} is not a ready training set"})
    errors = _store_errors()
    dest_uri = canonical_store_uri(_destination(slug))
    if DatasetVersion.objects.filter(store_uri=dest_uri).exists():
        raise ValidationError({"slug": f"{dest_uri} is already another dataset version's store"})
    try:
        dest = open_store(dest_uri)
        if not dest.manifest():
            base_hash, feedback_hash, counts = _copy_snapshot(base, feedback_store_uri, dest, progress)
        else:
            base_hash, feedback_hash, counts = "", "", {}
        report = dest.split_report().to_dict()
        manifest_hash = dest.manifest_hash()
    except errors as exc:
        _discard_partial(dest_uri)
        raise DatasetStoreUnavailable(f"dataset store unreachable: {type(exc).__name__}: {exc}") from exc
    except Exception:
        _discard_partial(dest_uri)
        raise
    options = {"lineage": {"base": base.slug, "base_store_uri": base.store_uri,
                           "base_manifest_hash": base_hash or base.manifest_hash,
                           "feedback_store_uri": canonical_store_uri(feedback_store_uri),
                           "feedback_manifest_hash": feedback_hash, **counts, **(lineage or {})}}
    with transaction.atomic():
        dataset = DatasetVersion.objects.create(
            slug=slug, kind=DatasetVersion.Kind.TRAINING, status=DatasetVersion.Status.READY,
            store_uri=dest_uri, source_path=base.store_uri, source_format="snapshot", options=options,
            description=f"Continuous-training snapshot: {base.slug} plus confirmed reader corrections",
            manifest_hash=manifest_hash, report=report, finished_at=timezone.now(),
        )
        audit_event_create(actor=None, actor_label=actor_label, action=AuditAction.DATASET_SNAPSHOT_CREATED,
                           obj=dataset, details={"slug": slug, "store_uri": dest_uri,
                                                 "manifest_hash": manifest_hash, **options["lineage"]})
    return dataset


def _copy_snapshot(base: DatasetVersion, feedback_store_uri: str, dest: DatasetStore,
                   progress: Callable[[int, int], None] | None = None) -> tuple[str, str, dict[str, int]]:
    from dataclasses import replace

    source = open_store(base.store_uri)
    # held-out splits first, so a confirmed image that is also a test image is never trained on
    base_rows = sorted(source.manifest(), key=lambda r: r.split == "feedback")
    base_hash = source.manifest_hash()
    if not any(r.split == "train" for r in base_rows):
        raise ValidationError({"base": f"dataset version {base.slug} holds no training images "
                                       f"(its store {base.store_uri} has no train split)"})
    feedback_store = open_store(feedback_store_uri)
    same = canonical_store_uri(feedback_store_uri) == canonical_store_uri(base.store_uri)
    feedback_rows = [] if same else feedback_store.rows("feedback")
    feedback_hash = feedback_store.manifest_hash()
    seen: set[str] = set()
    taken: set[str] = set()
    out: list[ManifestRow] = []
    copied_feedback = 0
    total = len(base_rows) + len(feedback_rows)
    for store, rows in ((source, base_rows), (feedback_store, feedback_rows)):
        for row in rows:
            if row.split == "feedback" and row.sha256 in seen:
                continue  # the same confirmed image from both stores, or in a held-out split
            path = row.path if row.path not in taken else f"feedback/{row.class_key}/{row.sha256[:16]}.png"
            if path in taken:
                continue
            dest.write_bytes(path, store.read_bytes(row))
            taken.add(path)
            seen.add(row.sha256)
            out.append(replace(row, path=path))
            copied_feedback += row.split == "feedback"
            if progress is not None:
                progress(len(out), total)
    dest.write_manifest(out)  # last: until now the destination is no dataset
    return base_hash, feedback_hash, {"images": len(out), "feedback_images": copied_feedback}


def _discard_partial(uri: str) -> None:
    """Remove a local destination that has images but no manifest (a copy cut short)."""
    import shutil

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return
    root = Path(parsed.path)
    try:
        if root.is_dir() and not (root / "manifest.csv").exists():
            shutil.rmtree(root)
    except OSError:
        logger.warning("could not remove the partial snapshot %s", root, exc_info=True)
