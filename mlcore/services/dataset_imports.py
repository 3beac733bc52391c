"""Dataset imports as writes: request one (validated before any row exists) and run it.

One path for the console's import form, ``manage.py import_dataset`` and the worker: the
request validates everything it can see on this server (folder, format, slug, destination,
that the folder holds images at all) before any row exists, so bad input leaves nothing
behind; the run (``mlcore.dataset_import`` on the training queue) decodes, de-duplicates,
splits and writes, reporting progress on the row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlcore.ml import data
from mlcore.ml.data import Candidate, DatasetStore, open_store
from mlcore.models import DatasetVersion
from mlcore.services.datasets import (
    audit_actor,
    canonical_store_uri,
    check_kind,
    check_slug,
    dataset_destination,
)
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
# Evaluation-only sets hold everything in the split nothing ever trains on.
EVALUATION_SPLIT = "final_eval"
PROGRESS_INTERVAL_S = 1.0
# No heartbeat for this long while importing: the worker is gone (decoding writes one a second).
STALE_AFTER_S = 15 * 60
Progress = Callable[[str, int, int], None]


# --- import: validation ---------------------------------------------------------------------


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
    check_slug(slug)
    check_kind(kind)
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
            dataset.store_uri if dataset is not None else dataset_destination(slug))
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
        user, label = audit_actor(actor, "system")
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
