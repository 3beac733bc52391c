"""The urgency rule of one prediction (pure Python, light: the worklist computes it in web
and worker processes without loading numpy's evaluation stack or torch).

- A version *without* applied operating points: the urgent-class probability mass (sum over
  the urgent classes); urgent at ``URGENT_BAND`` (0.5), the rule the worklist has always used.
- A version *with* applied points: each urgent class ``k`` is mapped piecewise-linearly so that
  its threshold ``t_k`` lands on 0.5 (below: ``0.5 p / t_k``; above:
  ``0.5 + 0.5 (p - t_k) / (1 - t_k)``), a class without a point keeps 0.5 on its own
  probability (the identity map), and the priority is the largest: urgent exactly when some
  class reaches its threshold, and monotone in every probability, so order and band mean the
  same thing with and without points.
- Out of scope: 1.0 (a person must look at what the model cannot judge).

``mlcore.ml.evaluation.operating_points`` measures this same rule on the locked set.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

DEFAULT_URGENT_MASS = 0.5
URGENT_BAND = 0.5
BELOW_BAND = URGENT_BAND - 1e-6  # strictly below the band even after rounding to 6 places


def rescaled(p: float, t: float) -> float:
    if p >= t:
        return 1.0 if t >= 1.0 else 0.5 + 0.5 * (p - t) / (1.0 - t)
    return min(0.5 * p / t, BELOW_BAND)


def urgency_priority(probabilities: Mapping[str, float], *, urgent_keys: Set[str],
                     thresholds: Mapping[str, float] | None = None, out_of_scope: bool = False) -> float:
    """0..1; urgent when >= ``URGENT_BAND``."""
    if out_of_scope:
        return 1.0
    if not thresholds:
        return float(sum(float(p) for k, p in probabilities.items() if k in urgent_keys))
    scores = [rescaled(float(probabilities.get(k, 0.0)), float(thresholds.get(k, DEFAULT_URGENT_MASS)))
              for k in sorted(urgent_keys)]
    return max(scores, default=0.0)
