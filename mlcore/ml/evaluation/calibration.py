"""Temperature scaling (Guo et al. 2017), fitted on the validation split.

One scalar keeps the ranking (accuracy, AUC unchanged) and only fixes over/under-confidence,
which is what a reader needs to trust a "92 %". Fitted on log T so T stays positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlcore.ml.evaluation.metrics import expected_calibration_error

T_MIN, T_MAX = 0.05, 50.0


def _as_tensors(logits: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise ValueError(
            f"need logits (N, C) and labels (N,), got {tuple(z.shape)} and {tuple(y.shape)}"
        )
    if z.shape[0] == 0:
        raise ValueError("cannot fit a temperature on an empty split (need >= 1 image)")
    return z, y


def fit_temperature(logits: Any, labels: Any, *, max_iter: int = 100) -> float:
    """Temperature T minimising the NLL of ``softmax(logits / T)`` on (val) ``labels``."""
    z, y = _as_tensors(logits, labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t):
        return 1.0
    return float(np.clip(t, T_MIN, T_MAX))


def softmax_with_temperature(logits: Any, temperature: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    z, y = _as_tensors(logits, labels)
    return float(F.cross_entropy(z / temperature, y))


def calibration_summary(logits: Any, labels: Any, temperature: float) -> dict[str, float]:
    """ECE and NLL before/after scaling, for the run page and the promotion report."""
    labels = np.asarray(labels)
    before = expected_calibration_error(softmax_with_temperature(logits, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(logits, temperature), labels)
    return {
        "temperature": float(temperature),
        "ece_before": float(before or 0.0),
        "ece_after": float(after or 0.0),
        "nll_before": nll(logits, labels, 1.0),
        "nll_after": nll(logits, labels, temperature),
    }
