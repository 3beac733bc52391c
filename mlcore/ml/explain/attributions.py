"""Gradient attributions via captum, computed on demand (they cost backward passes).

* Integrated Gradients (Sundararajan et al. 2017): pixel-level, axiomatic (completeness),
  ``n_steps`` forward+backward passes.
* Grad-CAM (Selvaraju et al. 2017) on ``model.cam_layer`` (ViT: the last stem block, whose
  feature map still has spatial layout; DenseNet: the last dense block): one backward pass,
  coarse but robust.

Both return (b H W) float32 in [0, 1] at input resolution and work for every registered model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from ._util import eval_mode, normalise_max

Baseline = Literal["black", "zeros"] | float | torch.Tensor


def _prepare(model: nn.Module, x: torch.Tensor,
             target: int | list[int] | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy ``x`` out of any inference-mode context and resolve the target class per sample
    (None: the predicted class)."""
    if x.ndim != 4:
        raise ValueError(f"expected input (B, C, H, W), got {tuple(x.shape)}")
    x = x.detach().clone().float()
    if target is None:
        with torch.no_grad():
            target_t = model(x).argmax(dim=1)
    else:
        target_t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        if target_t.numel() == 1:
            target_t = target_t.expand(x.shape[0])
        if target_t.numel() != x.shape[0]:
            raise ValueError(f"target must be one class index or one per sample "
                             f"({x.shape[0]}), got {target_t.numel()}")
        n_classes = int(getattr(model, "num_classes", 0)) or None
        if n_classes and (target_t.min() < 0 or target_t.max() >= n_classes):
            raise ValueError(f"target class out of range 0..{n_classes - 1}: "
                             f"{target_t.tolist()}")
    return x, target_t


def _baseline(x: torch.Tensor, baseline: Baseline) -> torch.Tensor:
    """'black': each image's own minimum (the darkest pixel in the input's normalisation,
    so it means black whatever mean/std the model uses); 'zeros': 0 (the data-set mean after
    normalisation); a float: that constant; a tensor: used as given."""
    if isinstance(baseline, torch.Tensor):
        return baseline.to(x.dtype).expand_as(x)
    if baseline == "black":
        return x.flatten(1).amin(dim=1).view(-1, 1, 1, 1).expand_as(x).clone()
    if baseline == "zeros":
        return torch.zeros_like(x)
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    raise ValueError(f"baseline must be 'black', 'zeros', a number or a tensor; "
                     f"got {baseline!r}")


def integrated_gradients(model: nn.Module, x: torch.Tensor, *,
                         target: int | list[int] | torch.Tensor | None = None,
                         n_steps: int = 32, baseline: Baseline = "black",
                         internal_batch_size: int | None = None) -> np.ndarray:
    """(b C H W) -> (b H W) |IG| summed over channels, per-sample normalised to [0, 1]."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(model):
        x, target_t = _prepare(model, x, target)
        ig = IntegratedGradients(model)
        attr = ig.attribute(x, baselines=_baseline(x, baseline), target=target_t,
                            n_steps=n_steps, internal_batch_size=internal_batch_size)
        maps = normalise_max(attr.detach().abs().sum(dim=1))
    return maps.cpu().numpy().astype(np.float32)


def grad_cam(model: nn.Module, x: torch.Tensor, *,
             target: int | list[int] | torch.Tensor | None = None) -> np.ndarray:
    """(b C H W) -> (b H W) Grad-CAM on ``model.cam_layer``, ReLU'd, bilinearly upsampled,
    per-sample normalised to [0, 1]."""
    layer = getattr(model, "cam_layer", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"grad_cam needs a model with a `cam_layer` module, "
                        f"{type(model).__name__} has none")
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(model):
        x, target_t = _prepare(model, x, target)
        cam = LayerGradCam(model, layer).attribute(x, target=target_t,
                                                   relu_attributions=True)
        up = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]),
                                          interpolate_mode="bilinear")
        maps = normalise_max(up[:, 0].clamp_min(0))
    return maps.cpu().numpy().astype(np.float32)
