"""One batched forward that yields everything evaluation needs: logits, CLS embeddings and
the model-free input descriptors used by the OOD detector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mlcore.ml.evaluation.ood import input_descriptor, input_std


@dataclass(slots=True)
class ModelOutputs:
    logits: np.ndarray  # (n, classes), float64
    embeddings: np.ndarray  # (n, d)
    descriptors: np.ndarray  # (n, f)
    input_std: np.ndarray  # (n,) intensity std in [0, 1] units

    @classmethod
    def concat(cls, parts: list[ModelOutputs]) -> ModelOutputs:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__slots__))


def forward_logits_embeddings(
    model: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``b 1 S S -> (b classes, b d)`` from one ``forward_features`` pass."""
    tokens = model.forward_features(x)
    return model.forward_head(tokens), model.forward_head(tokens, pre_logits=True)


def run_model(
    model: nn.Module,
    x: torch.Tensor,
    *,
    mean: float,
    std: float,
    batch_size: int = 64,
) -> ModelOutputs:
    """Evaluate ``model`` (put in eval mode) on normalised inputs ``n 1 S S``."""
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"run_model needs a non-empty (N, 1, S, S) batch, got {tuple(x.shape)}")
    model.eval()
    device = next(model.parameters()).device
    parts = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            logits, emb = forward_logits_embeddings(model, xb.to(device))
            parts.append(ModelOutputs(
                logits=logits.double().cpu().numpy(),
                embeddings=emb.double().cpu().numpy(),
                descriptors=input_descriptor(xb, mean, std),
                input_std=input_std(xb, mean, std),
            ))
    return ModelOutputs.concat(parts)
