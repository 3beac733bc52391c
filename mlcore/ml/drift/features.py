"""What drift detection keeps of one study: a float32 vector ``[image features | embedding]``
and a predicted category.

Image features (:data:`IMAGE_FEATURES`, 20 numbers):

- from the ORIGINAL decoded pixels (grey, [0, 1]): log2 height and width, mean, std and the
  5/25/50/75/95 % intensity quantiles -- contrast, gamma, window/level and resolution
  changes show here (the model's letterboxed input hides the size);
- from the model input (``mlcore.ml.evaluation.ood.input_descriptor``): log edge energy in
  x and y, log fine texture, and the 8-band spectral shape -- blur, down-sampling and noise
  show here.

The embedding is the model's own CLS embedding (``forward_head(forward_features(x),
pre_logits=True)``), so a change the network "sees" is measured in the network's terms.
The category is the predicted class as served, or ``out_of_scope`` (flagged or undecided):
the label-shift test compares their mix, which includes the scope mix (CXR vs OCT vs none).
"""

from __future__ import annotations

import numpy as np

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.transforms import to_grayscale_float

RAW_FEATURES = ("log2_height", "log2_width", "intensity_mean", "intensity_std",
                "intensity_q05", "intensity_q25", "intensity_q50", "intensity_q75",
                "intensity_q95")
DESCRIPTOR_FEATURES = ("log_edge_x", "log_edge_y", "log_fine_texture",
                       *(f"spectral_band_{i}" for i in range(1, 9)))
IMAGE_FEATURES = (*RAW_FEATURES, *DESCRIPTOR_FEATURES)
N_IMAGE_FEATURES = len(IMAGE_FEATURES)
# Columns of input_descriptor (64 layout, 5 quantiles, dx, dy, log std, fine, 8 spectral).
_DESCRIPTOR_COLUMNS = (69, 70, 72, *range(73, 81))
_DESCRIPTOR_LEN = 81
OUT_OF_SCOPE = "out_of_scope"
CATEGORIES = (*CLASS_KEYS, OUT_OF_SCOPE)
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_MAX_STATS_SIDE = 512


def raw_image_stats(img: np.ndarray) -> np.ndarray:
    """Size and intensity statistics of one decoded image (any array ``to_grayscale_float``
    accepts): ``(9,)`` float64 in :data:`RAW_FEATURES` order. Large images are subsampled
    (every k-th pixel, at most 512 per side) for the intensity figures."""
    grey = to_grayscale_float(img)
    h, w = grey.shape
    step = max(1, int(np.ceil(max(h, w) / _MAX_STATS_SIDE)))
    sample = grey[::step, ::step].astype(np.float64).ravel()
    q = np.quantile(sample, _QUANTILES)
    return np.array([np.log2(h), np.log2(w), sample.mean(), sample.std(), *q], dtype=np.float64)


def image_features(raw_stats: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """``(n, 9)`` raw statistics + ``(n, 81)`` input descriptors -> ``(n, 20)``."""
    raw_stats = np.atleast_2d(np.asarray(raw_stats, dtype=np.float64))
    descriptors = np.atleast_2d(np.asarray(descriptors, dtype=np.float64))
    if raw_stats.shape[1] != len(RAW_FEATURES) or descriptors.shape[1] < _DESCRIPTOR_LEN:
        raise ValueError(f"expected (n, {len(RAW_FEATURES)}) raw statistics and (n, >= "
                         f"{_DESCRIPTOR_LEN}) descriptors, got {raw_stats.shape} and "
                         f"{descriptors.shape}")
    if raw_stats.shape[0] != descriptors.shape[0]:
        raise ValueError(f"{raw_stats.shape[0]} raw statistics rows for "
                         f"{descriptors.shape[0]} descriptors")
    return np.concatenate([raw_stats, descriptors[:, list(_DESCRIPTOR_COLUMNS)]], axis=1)


def study_vector(features: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """One study's stored vector: ``[20 image features | d embedding]`` as float32."""
    features = np.asarray(features, dtype=np.float64).ravel()
    if features.shape[0] != N_IMAGE_FEATURES:
        raise ValueError(f"expected {N_IMAGE_FEATURES} image features, got {features.shape[0]}")
    return np.concatenate([features, np.asarray(embedding, dtype=np.float64).ravel()]
                          ).astype(np.float32)


def split_vector(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 20 + d)`` stored vectors -> image features ``(n, 20)``, embeddings ``(n, d)``."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    if vectors.shape[1] <= N_IMAGE_FEATURES:
        raise ValueError(f"a study vector holds {N_IMAGE_FEATURES} image features and an "
                         f"embedding; got width {vectors.shape[1]}")
    return vectors[:, :N_IMAGE_FEATURES], vectors[:, N_IMAGE_FEATURES:]


def study_category(top_class: str, out_of_scope: bool) -> str:
    """The category the label-shift test counts: the served class, or ``out_of_scope``."""
    if out_of_scope or not top_class:
        return OUT_OF_SCOPE
    if top_class not in CLASS_KEYS:
        raise ValueError(f"unknown class {top_class!r}; accepted: {', '.join(CLASS_KEYS)}")
    return top_class
