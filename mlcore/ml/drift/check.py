"""One drift check: a window of recent studies against a version's reference, every test.

``check_window`` refuses a window smaller than ``min_window`` with :class:`WindowTooSmall`
(the caller reports "waiting: needs N studies, has n"; nothing is alarmed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlcore.ml.drift.detectors import TestResult, ks_test, label_shift_test, mmd_test
from mlcore.ml.drift.features import CATEGORIES, IMAGE_FEATURES, split_vector
from mlcore.ml.drift.reference import DriftReference

DETECTORS = ("mmd", "ks", "label_shift")
MIN_WINDOW = 20
KS_COMPONENTS = 8  # leading embedding components tested by KS next to the image features


class WindowTooSmall(ValueError):
    def __init__(self, *, needed: int, has: int) -> None:
        super().__init__(f"waiting: needs {needed} studies, has {has}")
        self.needed = needed
        self.has = has


@dataclass(frozen=True)
class DriftVerdict:
    results: tuple[TestResult, ...]
    window_size: int

    @property
    def alarm(self) -> bool:
        return any(r.alarm for r in self.results)


def check_window(reference: DriftReference, vectors: np.ndarray, categories: Sequence[str], *,
                 alpha: float = 0.05, permutations: int = 200,
                 seed: int | np.random.Generator | None = None,
                 min_window: int = MIN_WINDOW,
                 detectors: Sequence[str] = DETECTORS) -> DriftVerdict:
    """Run ``detectors`` on a window: ``vectors`` are the stored study vectors
    (``features.study_vector``), ``categories`` their predicted categories."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = 0 if vectors.size == 0 else len(np.atleast_2d(vectors))
    if n < max(min_window, MIN_WINDOW):
        raise WindowTooSmall(needed=max(min_window, MIN_WINDOW), has=n)
    if len(categories) != n:
        raise ValueError(f"{len(categories)} categories for {n} studies")
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; accepted: {', '.join(DETECTORS)}")
    feats, emb = split_vector(vectors)
    z = reference.project(emb)
    results = []
    if "mmd" in detectors:
        results.append(mmd_test(reference.embeddings_pca, z, permutations=permutations,
                                alpha=alpha, seed=seed))
    if "ks" in detectors:
        k = min(KS_COMPONENTS, z.shape[1])
        names = [*IMAGE_FEATURES, *(f"embedding_pc{i + 1}" for i in range(k))]
        results.append(ks_test(np.hstack([reference.image_features, reference.embeddings_pca[:, :k]]),
                               np.hstack([feats, z[:, :k]]), names=names, alpha=alpha))
    if "label_shift" in detectors:
        counts = [sum(c == cat for c in categories) for cat in CATEGORIES]
        if sum(counts) != n:
            bad = sorted(set(categories) - set(CATEGORIES))
            raise ValueError(f"unknown categories {bad}; accepted: {', '.join(CATEGORIES)}")
        results.append(label_shift_test(reference.category_counts, counts, categories=CATEGORIES,
                                        alpha=alpha))
    return DriftVerdict(results=tuple(results), window_size=n)
