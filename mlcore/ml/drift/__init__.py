"""Image drift: per-study features, a model version's reference, and the detectors.

Pure code (numpy, scipy, torch; no Django): it runs where the model runs. The pieces:

- :mod:`.features`: what is kept of each study (image statistics + the model's own CLS
  embedding from ``forward_features``) and its predicted category;
- :mod:`.reference`: the reference a version is compared with (its in-scope validation
  images), built at training time and saved as an MLflow run artefact;
- :mod:`.detectors`: MMD with a permutation p-value, per-feature KS with a Bonferroni
  correction, and a chi-square label-shift test on predicted categories;
- :mod:`.check`: one window against one reference, every detector, with the "waiting"
  verdict for a window that is too small.
"""

from mlcore.ml.drift.check import DETECTORS, DriftVerdict, WindowTooSmall, check_window
from mlcore.ml.drift.detectors import TestResult, ks_test, label_shift_test, mmd_test
from mlcore.ml.drift.features import (
    CATEGORIES,
    IMAGE_FEATURES,
    N_IMAGE_FEATURES,
    image_features,
    raw_image_stats,
    split_vector,
    study_category,
    study_vector,
)
from mlcore.ml.drift.reference import DriftReference, ReferenceError

__all__ = [
    "CATEGORIES",
    "DETECTORS",
    "IMAGE_FEATURES",
    "N_IMAGE_FEATURES",
    "DriftReference",
    "DriftVerdict",
    "ReferenceError",
    "TestResult",
    "WindowTooSmall",
    "check_window",
    "image_features",
    "ks_test",
    "label_shift_test",
    "mmd_test",
    "raw_image_stats",
    "split_vector",
    "study_category",
    "study_vector",
]
