"""Celery tasks of mlcore: thin adapters around the services."""

from __future__ import annotations

from mlcore.services.datasets import dataset_import_run
from mlcore.services.registry import registry_sync
from radviewer.lib.tasks import house_task


@house_task(queue="default", soft_time_limit=120, name="mlcore.registry_refresh")
def registry_refresh(*, name: str | None = None) -> None:
    """Mirror the registry's versions and aliases from MLflow (beat runs it periodically)."""
    registry_sync(name=name)


@house_task(queue="training", soft_time_limit=6 * 3600, name="mlcore.dataset_import")
def dataset_import(*, dataset_id: int) -> None:
    """Run a requested dataset import (decode, de-duplicate, split, write; progress on the row)."""
    dataset_import_run(dataset_id=dataset_id)
