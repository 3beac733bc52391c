"""mlcore's tables, split by subdomain (DESIGN.md section 9, rule 10):

- ``registry``: the mirror of the MLflow registry (versions, aliases), the alias timeline,
  change records, acceptance criteria, rollout policy and reader outcomes;
- ``data``: dataset versions in the store and their imports;
- ``jobs``: training jobs;
- ``pipeline``: continuous-training pipeline runs;
- ``evaluation``: evaluation records (version x evaluation set) and the per-image
  prediction cache that makes a re-comparison instant;
- ``drift``: per-study drift features and drift check reports.
"""

from mlcore.models.data import DatasetVersion
from mlcore.models.drift import DriftObservation, DriftReport
from mlcore.models.evaluation import Evaluation, PredictionCache
from mlcore.models.jobs import TrainingJob
from mlcore.models.pipeline import PipelineRun
from mlcore.models.registry import (
    AcceptanceCriteria,
    AliasEvent,
    ChangeRecord,
    GuardRun,
    ModelAlias,
    ModelVersion,
    OperatingPoint,
    ReviewOutcome,
    RolloutPolicy,
)

__all__ = [
    "AcceptanceCriteria",
    "AliasEvent",
    "ChangeRecord",
    "DatasetVersion",
    "DriftObservation",
    "DriftReport",
    "Evaluation",
    "GuardRun",
    "ModelAlias",
    "ModelVersion",
    "OperatingPoint",
    "PipelineRun",
    "PredictionCache",
    "ReviewOutcome",
    "RolloutPolicy",
    "TrainingJob",
]
