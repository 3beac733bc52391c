"""Heat maps to PNG: a server-side overlay (for reports, DICOM SR, the PACS) and a
transparent colour layer (for the viewer, which blends it client-side under an opacity
slider). Colour maps are a few lines of numpy, so no matplotlib in the inference worker.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..transforms import to_grayscale_float


def _jet(v: np.ndarray) -> np.ndarray:
    """Piecewise-linear 'jet': blue -> cyan -> yellow -> red. (..) in [0, 1] -> (.., 3)."""
    four = 4.0 * v[..., None]
    return np.clip(1.5 - np.abs(four - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)


def _hot(v: np.ndarray) -> np.ndarray:
    """'hot': black -> red -> yellow -> white; reads well in greyscale printouts."""
    v = v[..., None]
    return np.clip(np.concatenate([3 * v, 3 * v - 1, 3 * v - 2], axis=-1), 0.0, 1.0)


COLORMAPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"jet": _jet, "hot": _hot}


def apply_colormap(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(h w) values in [0, 1] (clipped) -> (h w 3) uint8 RGB."""
    try:
        cmap = COLORMAPS[colormap]
    except KeyError:
        raise ValueError(f"unknown colormap {colormap!r}; accepted: "
                         f"{', '.join(sorted(COLORMAPS))}") from None
    v = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    return np.round(cmap(v) * 255.0).astype(np.uint8)


def _check_heatmap(heatmap: np.ndarray) -> np.ndarray:
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, got shape {h.shape}")
    return h


def _resize(heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
    if heatmap.shape == (height, width):
        return heatmap
    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32))
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _png(rgb_or_rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb_or_rgba).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_overlay_png(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45,
                       colormap: str = "jet") -> bytes:
    """Grey image (H W) blended with a coloured heat map -> RGB PNG of size H x W.

    The heat map ((h w), [0, 1]) is resized to the image with PIL bilinear. The blend weight
    is ``alpha * heat`` per pixel, so regions the model ignored show the radiograph
    unchanged rather than under a blue wash.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image)
    if img.dtype == np.uint8 and img.ndim == 2:
        grey = img.astype(np.float32) / 255.0
    else:
        grey = to_grayscale_float(img)
    height, width = grey.shape
    heat = np.clip(_resize(_check_heatmap(heatmap), width, height), 0.0, 1.0)
    colour = apply_colormap(heat, colormap).astype(np.float32) / 255.0
    weight = (alpha * heat)[..., None]
    out = (1.0 - weight) * grey[..., None] + weight * colour
    return _png(np.round(out * 255.0).astype(np.uint8))


def heatmap_png(heatmap: np.ndarray, *, colormap: str = "jet",
                size: tuple[int, int] | None = None, max_alpha: float = 1.0) -> bytes:
    """Heat map ((h w), [0, 1]) -> RGBA PNG whose alpha is ``max_alpha * value``, for a
    client-side overlay. ``size`` = (width, height) resizes it first (default: as is)."""
    if not 0.0 <= max_alpha <= 1.0:
        raise ValueError(f"max_alpha must be in [0, 1], got {max_alpha}")
    heat = _check_heatmap(heatmap)
    if size is not None:
        heat = _resize(heat, int(size[0]), int(size[1]))
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    rgba = np.empty((*heat.shape, 4), dtype=np.uint8)
    rgba[..., :3] = apply_colormap(heat, colormap)
    rgba[..., 3] = np.round(heat * max_alpha * 255.0).astype(np.uint8)
    return _png(rgba)
