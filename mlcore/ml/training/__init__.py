"""Training: Lightning data module and system, local and Ray entry points.

Importing this package needs Lightning but not MLflow (MLflow is imported when ``train``
runs), so the system, data module and precision probe also work on a bare GPU box.
"""

from mlcore.ml.training.config import TrainConfig, TrainResult
from mlcore.ml.training.datamodule import RadDataModule, inverse_frequency_weights
from mlcore.ml.training.system import ClassifierSystem
from mlcore.ml.training.train import train

__all__ = [
    "ClassifierSystem",
    "RadDataModule",
    "TrainConfig",
    "TrainResult",
    "inverse_frequency_weights",
    "train",
]
