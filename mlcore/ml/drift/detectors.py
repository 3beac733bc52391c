"""The three drift tests, each answering "does this window of recent studies come from the
reference's distribution?" with a statistic and a p-value.

- :func:`mmd_test`: maximum mean discrepancy (biased V-statistic) with a Gaussian kernel
  whose bandwidth is the median pairwise distance of the pooled sample (median heuristic),
  p-value from ``B`` random permutations of the pooled sample:
  ``p = (1 + #{T_perm >= T_obs}) / (1 + B)`` (never zero; valid at any B).
- :func:`ks_test`: two-sample Kolmogorov-Smirnov per feature (D from the empirical CDFs;
  p-value as scipy's ``ks_2samp(method="asymp")``: the one-sample KS distribution at
  ``n m / (n + m)``), Bonferroni-corrected (``p_adj = min(1, k p)``; family-wise error <=
  alpha over the k features). The reported p-value is the smallest corrected one.
- :func:`label_shift_test`: chi-square test of homogeneity on the 2 x C table of predicted
  categories (reference vs window). Categories too rare for the chi-square approximation
  (an expected count under 5 in either row) are merged, smallest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    detector: str
    statistic: float
    p_value: float
    alarm: bool
    details: dict[str, Any] = field(default_factory=dict)


def _two_samples(x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"{what}: expected two (n, d) samples of one width, got {x.shape} "
                         f"and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"{what}: each sample needs at least 2 rows, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what}: samples contain NaN or inf")
    return x, y


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def gaussian_kernel_median(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Gram matrix ``exp(-|a - b|^2 / (2 sigma^2))`` with sigma the median pairwise distance
    (over distinct pairs; 1 when all points coincide). Returns the matrix and sigma."""
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    iu = np.triu_indices(len(z), k=1)
    pairs = d2[iu]
    pairs = pairs[pairs > 0]
    sigma2 = float(np.median(pairs)) if pairs.size else 1.0
    return np.exp(-d2 / (2.0 * sigma2)), float(np.sqrt(sigma2))


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, alpha: float = 0.05,
             seed: int | np.random.Generator | None = None) -> TestResult:
    """MMD^2 of ``x`` (reference) vs ``y`` (window) with a permutation p-value."""
    x, y = _two_samples(x, y, "mmd")
    _check_alpha(alpha)
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    rng = np.random.default_rng(seed)
    n, m = len(x), len(y)
    kernel, sigma = gaussian_kernel_median(np.vstack([x, y]))
    w = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    t_obs = float(w @ kernel @ w)
    exceed = 0
    tol = 1e-12 * max(1.0, abs(t_obs))
    done = 0
    while done < permutations:
        b = min(128, permutations - done)
        order = np.argsort(rng.random((b, n + m)), axis=1)
        wp = w[order]
        t_perm = np.einsum("bi,bi->b", wp @ kernel, wp)
        exceed += int((t_perm >= t_obs - tol).sum())
        done += b
    p = (1 + exceed) / (1 + permutations)
    return TestResult("mmd", t_obs, p, p < alpha,
                      {"sigma": sigma, "permutations": permutations, "n_reference": n,
                       "n_window": m, "exceeding": exceed})


def ks_test(x: np.ndarray, y: np.ndarray, *, names: Sequence[str] | None = None,
            alpha: float = 0.05, top: int = 5) -> TestResult:
    """Per-feature two-sample KS, Bonferroni over the features; statistic = largest D."""
    x, y = _two_samples(x, y, "ks")
    _check_alpha(alpha)
    k = x.shape[1]
    names = list(names) if names is not None else [f"feature_{i}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"ks: {len(names)} names for {k} features")
    n, m = len(x), len(y)
    d = np.empty(k)
    for j in range(k):
        xs, ys = np.sort(x[:, j]), np.sort(y[:, j])
        z = np.concatenate([xs, ys])
        d[j] = np.abs(np.searchsorted(xs, z, side="right") / n
                      - np.searchsorted(ys, z, side="right") / m).max()
    # scipy's two-sample "asymp" p-value: the one-sample KS distribution at n m / (n + m).
    # Every feature has the same n and m, so p falls as D grows: only the largest D's need
    # the (slow) distribution function -- the smallest p decides, the next few are shown.
    order = np.argsort(-d, kind="stable")[:max(1, top)]
    p = np.clip(stats.kstwo.sf(d[order], np.round(n * m / (n + m))), 0.0, 1.0)
    p_adj = np.minimum(1.0, p * k)
    worst = [{"feature": names[j], "d": float(d[j]), "p": float(pj), "p_adjusted": float(pa)}
             for j, pj, pa in zip(order, p, p_adj, strict=True)]
    return TestResult("ks", float(d.max()), float(p_adj[0]), bool(p_adj[0] < alpha),
                      {"correction": "bonferroni", "features": k, "worst": worst,
                       "n_reference": len(x), "n_window": len(y)})


def label_shift_test(reference_counts: Sequence[int], window_counts: Sequence[int], *,
                     categories: Sequence[str], alpha: float = 0.05,
                     min_expected: float = 5.0) -> TestResult:
    """Chi-square homogeneity test of predicted-category counts, reference vs window."""
    _check_alpha(alpha)
    ref = np.asarray(reference_counts, dtype=np.float64)
    win = np.asarray(window_counts, dtype=np.float64)
    if ref.shape != win.shape or ref.ndim != 1 or len(categories) != len(ref):
        raise ValueError(f"label_shift: counts of shapes {ref.shape} and {win.shape} for "
                         f"{len(categories)} categories")
    if (ref < 0).any() or (win < 0).any() or ref.sum() <= 0 or win.sum() <= 0:
        raise ValueError("label_shift: counts must be non-negative with a positive total in "
                         "each row")
    n_ref, n_win = ref.sum(), win.sum()
    buckets = [([c], r, w) for c, r, w in zip(categories, ref, win, strict=True) if r + w > 0]

    def smallest_expected(bucket: tuple[list[str], float, float]) -> float:
        pooled = (bucket[1] + bucket[2]) / (n_ref + n_win)
        return pooled * min(n_ref, n_win)

    buckets.sort(key=lambda b: b[1] + b[2])
    while len(buckets) > 2 and smallest_expected(buckets[0]) < min_expected:
        a, b = buckets[0], buckets[1]
        buckets = sorted([(a[0] + b[0], a[1] + b[1], a[2] + b[2]), *buckets[2:]],
                         key=lambda bb: bb[1] + bb[2])
    shares = {"+".join(names): {"reference": r / n_ref, "window": w / n_win}
              for names, r, w in buckets}
    details: dict[str, Any] = {"test": "chi-square homogeneity", "groups": shares,
                               "n_reference": int(n_ref), "n_window": int(n_win)}
    if len(buckets) < 2:
        details["note"] = "one category only: nothing to compare"
        return TestResult("label_shift", 0.0, 1.0, False, details)
    table = np.array([[r for _, r, _ in buckets], [w for _, _, w in buckets]])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    details["dof"] = int(dof)
    return TestResult("label_shift", float(chi2), float(p), bool(p < alpha), details)
