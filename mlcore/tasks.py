"""Celery tasks of mlcore: thin adapters around the services."""

from __future__ import annotations

from mlcore.services.evaluations import evaluation_run
from mlcore.services.registry import registry_sync
from radviewer.lib.tasks import house_task


@house_task(queue="default", soft_time_limit=120, name="mlcore.registry_refresh")
def registry_refresh(*, name: str | None = None) -> None:
    """Mirror the registry's versions and aliases from MLflow (beat runs it periodically)."""
    registry_sync(name=name)


@house_task(queue="training", soft_time_limit=3600, name="mlcore.evaluation_run")
def evaluation_run_task(*, evaluation_id: int) -> None:
    """Score one requested evaluation (the row is locked; a finished one returns at once)."""
    evaluation_run(evaluation_id=evaluation_id)
