"""Explanations: attention rollout (cheap, default), captum attributions (on demand), PNGs.

All map functions return float32 numpy arrays (b H W) in [0, 1] at the model's input
resolution; map them back to the original image with ``transforms.unletterbox``.
"""

from __future__ import annotations

from .attributions import grad_cam, integrated_gradients
from .render import COLORMAPS, apply_colormap, heatmap_png, render_overlay_png
from .rollout import (
    attention_rollout,
    predict_with_rollout,
    rollout_from_attentions,
    rollout_maps,
)

__all__ = [
    "COLORMAPS",
    "apply_colormap",
    "attention_rollout",
    "grad_cam",
    "heatmap_png",
    "integrated_gradients",
    "predict_with_rollout",
    "render_overlay_png",
    "rollout_from_attentions",
    "rollout_maps",
]
