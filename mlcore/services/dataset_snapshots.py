"""Continuous training's training sets: a snapshot of a training set plus the readers'
confirmed corrections, written all or nothing and registered with its lineage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mlcore.ml.data import DatasetStore, ManifestRow, open_store
from mlcore.models import DatasetVersion
from mlcore.services.datasets import canonical_store_uri, check_slug, dataset_destination
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

logger = logging.getLogger(__name__)


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
    check_slug(slug)
    existing = DatasetVersion.objects.filter(slug=slug).first()
    if existing is not None and existing.status == DatasetVersion.Status.READY:
        return existing
    if existing is not None:
        raise ValidationError({"slug": f"dataset version {slug!r} exists and is {existing.status}"})
    if base.status != DatasetVersion.Status.READY or base.kind != DatasetVersion.Kind.TRAINING:
        raise ValidationError({"base": f"dataset version {base.slug} is not a ready training set"})
    errors = _store_errors()
    dest_uri = canonical_store_uri(dataset_destination(slug))
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
