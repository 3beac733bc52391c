"""Evaluation: metrics, calibration, out-of-scope detection, bundle evaluation."""

from mlcore.ml.evaluation.calibration import (
    calibration_summary,
    fit_temperature,
    softmax_with_temperature,
)
from mlcore.ml.evaluation.metrics import (
    CXR4_KEYS,
    ClassMetrics,
    EvaluationReport,
    binary_auc,
    compute_metrics,
    expected_calibration_error,
    urgent_sensitivity,
)
from mlcore.ml.evaluation.ood import OODDetector
from mlcore.ml.evaluation.plots import confusion_matrix_png
from mlcore.ml.evaluation.runner import evaluate_bundle, log_evaluation

__all__ = [
    "CXR4_KEYS",
    "ClassMetrics",
    "EvaluationReport",
    "OODDetector",
    "binary_auc",
    "calibration_summary",
    "compute_metrics",
    "confusion_matrix_png",
    "evaluate_bundle",
    "expected_calibration_error",
    "fit_temperature",
    "log_evaluation",
    "softmax_with_temperature",
    "urgent_sensitivity",
]
