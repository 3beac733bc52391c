"""Helpers shared by the explanation methods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run in eval mode (BatchNorm running stats, no dropout), then restore the previous mode:
    an explanation must describe the prediction the user saw, and must not flip a model that
    is being trained into eval behind the trainer's back."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def normalise_max(maps: torch.Tensor) -> torch.Tensor:
    """Per-sample division by the maximum of a non-negative map -> [0, 1]; all-zero stays 0."""
    peak = maps.flatten(1).amax(dim=1).view(-1, *([1] * (maps.ndim - 1)))
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps))
