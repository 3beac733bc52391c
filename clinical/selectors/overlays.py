"""What a heat-map overlay explains, for the viewer's legend and its region outline.

- ``attribution_key``: where an attribution for (method, class) is kept in
  ``Prediction.attributions`` (the top class keeps the bare method key, so maps computed
  before per-class attributions, and the old URLs without ``?class=``, still work);
- ``heatmap_method``: what the prediction-time map truly is (attention rollout of a ViT is
  not class-specific; a CNN's map is Grad-CAM of the predicted class);
- ``attention_region``: the highest-attention region of a map (threshold at a percentile,
  largest 4-connected component) as a box and an outline in image pixel coordinates.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from clinical.models import Prediction
from mlcore.selectors import model_versions

REGION_PERCENTILE = 90.0

# The prediction-time map: attention rollout for ViTs; Grad-CAM of the predicted class for
# CNN variants, which have no attention to roll out (mlcore.ml.predictor._forward).
ATTENTION_ROLLOUT = {"method": "attention_rollout", "label": "Attention rollout", "class_specific": False}
PREDICTED_CLASS_GRAD_CAM = {"method": "grad_cam", "label": "Grad-CAM", "class_specific": True}
CNN_VARIANT_PREFIXES = ("densenet", "resnet", "efficientnet", "convnext")


def attribution_key(method: str, target: str, top_class: str) -> str:
    """The ``Prediction.attributions`` key of ``method`` for class ``target``."""
    return method if not target or target == top_class else f"{method}:{target}"


def prediction_classes(prediction: Prediction | None) -> list[str]:
    """The classes an explanation can be asked for: the prediction's scope, best first."""
    if prediction is None or not prediction.top_class:
        return []
    return [key for key, _ in prediction.sorted_probabilities()]


def heatmap_method(prediction: Prediction) -> dict[str, Any]:
    variant = (
        model_versions(name=prediction.model_name)
        .filter(version=prediction.model_version)
        .values_list("variant", flat=True)
        .first()
        or ""
    )
    if variant.lower().startswith(CNN_VARIANT_PREFIXES):
        return PREDICTED_CLASS_GRAD_CAM
    return ATTENTION_ROLLOUT


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean mask (ties: the first in raster order)."""
    h, w = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int32)
    best, best_size, current = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        size, queue = 0, deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = current
                    queue.append((ny, nx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros(mask.shape, dtype=bool)


def _outline(component: np.ndarray) -> list[list[int]]:
    """Boundary of a pixel set as axis-aligned segments [x0, y0, x1, y1] on the pixel grid
    (pixel (x, y) spans [x, x+1] x [y, y+1]); collinear neighbours are merged."""
    padded = np.pad(component, 1)
    inside = padded[1:-1, 1:-1]
    segments: list[list[int]] = []
    # horizontal edges: top (row above outside) and bottom (row below outside)
    for edge, offset in ((inside & ~padded[:-2, 1:-1], 0), (inside & ~padded[2:, 1:-1], 1)):
        for y in range(edge.shape[0]):
            xs = np.flatnonzero(edge[y])
            for run in np.split(xs, np.flatnonzero(np.diff(xs) != 1) + 1) if xs.size else []:
                segments.append([int(run[0]), y + offset, int(run[-1]) + 1, y + offset])
    # vertical edges: left and right
    for edge, offset in ((inside & ~padded[1:-1, :-2], 0), (inside & ~padded[1:-1, 2:], 1)):
        for x in range(edge.shape[1]):
            ys = np.flatnonzero(edge[:, x])
            for run in np.split(ys, np.flatnonzero(np.diff(ys) != 1) + 1) if ys.size else []:
                segments.append([x + offset, int(run[0]), x + offset, int(run[-1]) + 1])
    return segments


def attention_region(
    heat: np.ndarray, *, width: int, height: int, percentile: float = REGION_PERCENTILE
) -> dict[str, Any] | None:
    """The highest-attention region of ``heat`` (a 2-D map in [0, 1] on any grid that
    covers the whole image): pixels at or above the ``percentile``-th percentile, the
    largest connected component of them. Returns its bounding ``box`` [x0, y0, x1, y1] and
    its ``outline`` segments, both in image pixels (``width`` x ``height``), plus the
    threshold; None for a flat (or empty) map, which has no region to point at."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
    if heat.ndim != 2 or heat.size == 0 or float(heat.max()) <= float(heat.min()):
        return None
    threshold = float(np.percentile(heat, percentile))
    mask = heat >= threshold
    if mask.all():  # most of the map at its maximum: keep only the strict top
        mask = heat > threshold
    component = _largest_component(mask)
    if not component.any():
        return None
    ys, xs = np.nonzero(component)
    sx, sy = width / heat.shape[1], height / heat.shape[0]

    def scale(x: float, y: float) -> list[float]:
        return [round(x * sx, 2), round(y * sy, 2)]

    box = [*scale(xs.min(), ys.min()), *scale(xs.max() + 1, ys.max() + 1)]
    outline = [[*scale(x0, y0), *scale(x1, y1)] for x0, y0, x1, y1 in _outline(component)]
    return {
        "percentile": percentile,
        "threshold": round(threshold, 4),
        "box": box,
        "outline": outline,
        "share": round(float(component.mean()), 4),
        "width": width,
        "height": height,
    }


def overlay_png_region(name: str, *, width: int, height: int) -> dict[str, Any] | None:
    """:func:`attention_region` of a stored RGBA overlay PNG, whose alpha is the map
    (``mlcore.ml.explain.render.heatmap_png``: alpha = 255 x value)."""
    with default_storage.open(name, "rb") as fh:
        overlay = PILImage.open(fh)
        overlay.load()
    if overlay.mode != "RGBA":
        return None
    alpha = np.asarray(overlay.getchannel("A"), dtype=np.float32) / 255.0
    return attention_region(alpha, width=width, height=height)
