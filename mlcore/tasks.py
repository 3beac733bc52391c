"""Celery tasks of mlcore: thin adapters around the services."""

from __future__ import annotations

import logging

from mlcore.models import TrainingJob
from mlcore.services import training_jobs
from mlcore.services.dataset_imports import dataset_import_run, dataset_imports_fail_stale
from mlcore.services.drift import drift_check_run
from mlcore.services.evaluations import evaluation_run
from mlcore.services.registry import registry_sync
from radviewer.lib.tasks import house_task

logger = logging.getLogger(__name__)


@house_task(queue="default", soft_time_limit=120, name="mlcore.registry_refresh")
def registry_refresh(*, name: str | None = None) -> None:
    """Mirror the registry's versions and aliases from MLflow (beat runs it periodically)."""
    registry_sync(name=name)


@house_task(queue="training", soft_time_limit=6 * 3600, name="mlcore.dataset_import")
def dataset_import(*, dataset_id: int) -> None:
    """Run a requested dataset import (decode, de-duplicate, split, write; progress on the row)."""
    dataset_import_run(dataset_id=dataset_id)


# Epoch-bounded jobs on a CPU can take hours; the limit only catches a hung one.
TRAINING_SOFT_TIME_LIMIT_S = 6 * 3600


@house_task(queue="training", soft_time_limit=TRAINING_SOFT_TIME_LIMIT_S,
            name="mlcore.training_job_run")
def training_job_run(*, job_id: int) -> None:
    """Run one training job (its row says what and how far it got)."""
    try:
        training_jobs.training_job_run(job_id=job_id)
    except TrainingJob.DoesNotExist:  # deleted while queued: nothing to do
        logger.warning("training job %s no longer exists; message dropped", job_id)


@house_task(queue="default", soft_time_limit=60, name="mlcore.stale_work_reap")
def stale_work_reap() -> None:
    """Fail training jobs and dataset imports whose worker stopped stamping them (beat,
    every minute), so nothing shows "running" or "importing" forever."""
    training_jobs.training_jobs_reap()
    dataset_imports_fail_stale()


@house_task(queue="training", soft_time_limit=3600, name="mlcore.evaluation_run")
def evaluation_run_task(*, evaluation_id: int) -> None:
    """Score one requested evaluation (the row is locked; a finished one returns at once)."""
    evaluation_run(evaluation_id=evaluation_id)


@house_task(queue="default", soft_time_limit=300, name="mlcore.drift_check")
def drift_check() -> None:
    """Compare each served version's newest studies with its reference (beat); writes
    DriftReport rows (mlcore.services.drift)."""
    drift_check_run()


@house_task(queue="training", soft_time_limit=TRAINING_SOFT_TIME_LIMIT_S, name="mlcore.pipeline_run")
def pipeline_run(*, run_id: int) -> None:
    """Run or resume one continuous-training run (finished steps are skipped)."""
    from mlcore.models import PipelineRun
    from mlcore.services.pipeline_run import pipeline_run_execute

    try:
        pipeline_run_execute(run_id=run_id)
    except PipelineRun.DoesNotExist:
        logger.warning("pipeline run %s no longer exists; message dropped", run_id)


@house_task(queue="default", soft_time_limit=120, name="mlcore.pipeline_check")
def pipeline_check() -> None:
    """Beat: retry due runs, restart a lost queued one, fire the corrections and schedule triggers."""
    from mlcore.services.pipeline import pipeline_check as check

    check()
