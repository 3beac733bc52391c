"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Why it is the default explanation: it reuses the attention probabilities of the prediction's
own forward pass, so with :func:`predict_with_rollout` it costs a few small matrix products
on top of the prediction, where gradient methods need one or more backward passes.

Per block: fuse heads (mean/max/min), optionally drop the weakest links, add the residual
identity (A' = (A + I) / 2, rows renormalised), multiply through the blocks; the CLS row
over the patch tokens, reshaped to the stem's token grid and upsampled, is the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._util import eval_mode

HeadFusion = Literal["mean", "max", "min"]


def _require_vit(model: nn.Module, what: str) -> None:
    if not getattr(model, "is_vit", False):
        name = getattr(model, "default_cfg", {}).get("name", type(model).__name__)
        raise TypeError(f"{what} needs a ViT (attention maps); {name} has none: "
                        f"use grad_cam or integrated_gradients instead")


def rollout_from_attentions(attentions: Sequence[torch.Tensor], *, discard_ratio: float = 0.0,
                            head_fusion: HeadFusion = "mean") -> torch.Tensor:
    """Pure rollout math: list of (b heads t t) attention probabilities, first block first ->
    (b t-1): how much the CLS token (index 0) draws from each patch token through all blocks.

    ``discard_ratio`` zeroes that fraction of the weakest fused attention links per block
    (never the CLS column), which sharpens maps of deep models.
    """
    if not attentions:
        raise ValueError("rollout needs at least one attention map")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    fuse = {"mean": lambda a: a.mean(dim=1), "max": lambda a: a.amax(dim=1),
            "min": lambda a: a.amin(dim=1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    b, _, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=torch.float32, device=attentions[0].device)
    links = []
    for attn in attentions:
        if attn.ndim != 4 or attn.shape[0] != b or attn.shape[-2:] != (t, t):
            raise ValueError(f"attention maps must all be (b, heads, {t}, {t}) with b={b}; "
                             f"got {tuple(attn.shape)}")
        a = fuse[head_fusion](attn.float())
        if discard_ratio > 0:
            flat = rearrange(a, "b i j -> b (i j)").clone()
            k = int(flat.shape[1] * discard_ratio)
            if k > 0:
                _, idx = flat.topk(k, dim=1, largest=False)
                is_cls = idx % t == 0  # never cut links into the CLS column
                flat.scatter_(1, idx, flat.gather(1, idx) * is_cls)
            a = rearrange(flat, "b (i j) -> b i j", i=t)
        a = (a + eye) / 2
        links.append(a / a.sum(dim=-1, keepdim=True))
    # Rollout R = A'_L ... A'_1; only its CLS row is needed, e_0^T A'_L ... A'_1, so multiply
    # a row vector from the last block down: O(L t^2) instead of O(L t^3).
    row = eye[0].expand(b, 1, t)
    for a in reversed(links):
        row = row @ a
    return row[:, 0, 1:]


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max to [0, 1]; a constant map becomes all zeros."""
    lo = maps.flatten(1).amin(dim=1).view(-1, *([1] * (maps.ndim - 1)))
    hi = maps.flatten(1).amax(dim=1).view(-1, *([1] * (maps.ndim - 1)))
    span = hi - lo
    return torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.zeros_like(maps))


def rollout_maps(model: nn.Module, attentions: Sequence[torch.Tensor],
                 input_hw: tuple[int, int], *, discard_ratio: float = 0.0,
                 head_fusion: HeadFusion = "mean") -> np.ndarray:
    """Captured attentions -> (b H W) float32 [0, 1] maps at input resolution."""
    gh, gw = model.stem.output_size(*input_hw)
    cls_row = rollout_from_attentions(attentions, discard_ratio=discard_ratio,
                                      head_fusion=head_fusion)
    if cls_row.shape[1] != gh * gw:
        raise ValueError(f"{cls_row.shape[1]} patch tokens do not fit the {gh}x{gw} stem grid")
    grid = rearrange(cls_row, "b (h w) -> b 1 h w", h=gh, w=gw)
    up = F.interpolate(grid, size=tuple(input_hw), mode="bilinear", align_corners=False)
    return _normalise(up[:, 0]).cpu().numpy().astype(np.float32)


def predict_with_rollout(model: nn.Module, x: torch.Tensor, *, discard_ratio: float = 0.0,
                         head_fusion: HeadFusion = "mean") -> tuple[torch.Tensor, np.ndarray]:
    """One forward pass with attention capture on -> (logits (b classes), maps (b H W)).

    Runs in eval mode under ``inference_mode``; the model's train/eval mode and capture flag
    are restored afterwards.
    """
    _require_vit(model, "predict_with_rollout")
    previous = model.set_attention_capture(True)
    try:
        with eval_mode(model), torch.inference_mode():
            logits = model(x)
            attentions = model.captured_attentions()
            maps = rollout_maps(model, attentions, tuple(x.shape[-2:]),
                                discard_ratio=discard_ratio, head_fusion=head_fusion)
    finally:
        model.set_attention_capture(previous)
    return logits, maps


def attention_rollout(model: nn.Module, x: torch.Tensor, *, discard_ratio: float = 0.0,
                      head_fusion: HeadFusion = "mean") -> np.ndarray:
    """(b 1 H W) -> (b H W) float32 attention-rollout maps in [0, 1] at input resolution."""
    return predict_with_rollout(model, x, discard_ratio=discard_ratio,
                                head_fusion=head_fusion)[1]
