"""Dataset versions as writes: register an existing store, and what every dataset write shares
(one spelling per store, the slug and kind rules, where a new store goes, who is audited).

Imports (request, run, stale imports) are in ``mlcore.services.dataset_imports``; the
continuous-training snapshots in ``mlcore.services.dataset_snapshots``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlcore.ml.data import LocalDatasetStore, open_store
from mlcore.models import DatasetVersion
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

CURRENT_SLUG = "current"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")


def canonical_store_uri(uri: str | Path) -> str:
    """One spelling per store (``file:///abs`` or ``s3://bucket/prefix``), so that the
    unique ``store_uri`` really means one row per store however the path was written."""
    text = str(uri)
    if urlparse(text).scheme == "s3":
        return text.rstrip("/")
    store = open_store(text)
    return store.uri


def audit_actor(actor: Any, fallback: str) -> tuple[Any, str]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return user, ("" if user else (str(actor) if isinstance(actor, str) and actor else fallback))


def check_slug(slug: str) -> None:
    if not _SLUG.match(slug or ""):
        raise ValidationError({"slug": f"{slug!r} is not a usable name: use 1-80 lowercase letters, "
                                       "digits, '-' or '_', starting with a letter or digit"})


def check_kind(kind: str) -> None:
    if kind not in DatasetVersion.Kind.values:
        raise ValidationError({"kind": f"unknown kind {kind!r}; accepted: "
                                       f"{', '.join(DatasetVersion.Kind.values)}"})


def dataset_destination(slug: str) -> str:
    """Local stores under ``VAR_DIR/datasets/<slug>``; with an S3 ``DATASET_STORE_URI``,
    the prefix beside it (``s3://bucket/datasets/current`` -> ``s3://bucket/datasets/<slug>``)."""
    current = str(settings.DATASET_STORE_URI)
    parsed = urlparse(current)
    if parsed.scheme == "s3":
        parent = parsed.path.strip("/").rpartition("/")[0]
        return f"s3://{parsed.netloc}/{parent + '/' if parent else ''}{slug}"
    return LocalDatasetStore(Path(settings.VAR_DIR) / "datasets" / slug).uri


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
    check_slug(slug)
    check_kind(kind)
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
        user, label = audit_actor(actor, "system")
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
