"""Image preprocessing and training augmentation, in plain torch.

Why plain torch rather than kornia or MONAI transforms: the whole pipeline is five small
operations (grey conversion, aspect-preserving resize, padding, normalisation, one affine
warp), so a transform library would add a dependency (and its version drift) for little;
plain ``F.interpolate`` / ``F.affine_grid`` / ``F.grid_sample`` calls give exact control over
antialiasing, padding and interpolation, behave the same in training, in the Celery inference
worker and in ONNX export, and every random draw comes from an explicit ``torch.Generator``
so augmentation is reproducible.

One path, training and serving alike (DESIGN.md section 6): ``np.ndarray`` (any supported
dtype/layout: decoded PNG/JPEG, or DICOM after its Modality and VOI LUTs) ->
:func:`letterboxed01` (:func:`to_grayscale_float`, [0, 1] float32 H x W, then
:func:`letterbox_with_box`, 1 x S x S, content centred, zero padding) ->
[:class:`TrainAugment`, training only, on [0, 1] intensities] -> :func:`finish_input`
(the model's intensity standardisation over the content box, then :func:`normalise`).
:func:`model_input` is that path without augmentation; the predictor, the evaluation and
the training data module all call these functions and no others, so the same pixels give
the same model input whatever file format carried them.

Intensity standardisation (``PreprocessConfig.intensity``): ``"equalize"`` maps each image's
content through its own cumulative histogram (256 levels), so the model never sees how a
source's detector, processing or export set global contrast, brightness or gamma -- cues a
small multi-source set would otherwise let it learn instead of the disease (on real-cxr,
class and source are confounded: docs/model-card.md). It runs after augmentation in
training, so contrast/gamma augmentation is undone by it and noise/blur augmentation is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .classes import modality_of

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL "L"
_UINT16_DEPTHS = (10, 12, 14, 16)


INTENSITY_METHODS = ("none", "equalize")
# An image whose content spans fewer 8-bit levels than this is left as it is: equalising a
# blank frame would stretch its noise to full contrast and hide it from the blank-image check.
MIN_EQUALIZE_LEVELS = 8


@dataclass(frozen=True)
class PreprocessConfig:
    """What a model version needs to see its inputs as in training (stored with the model).

    ``intensity``: ``"none"`` or ``"equalize"`` (see the module docstring); bundles written
    before the option existed read as ``"none"``, which is what they were trained with.
    """

    image_size: int
    mean: float
    std: float
    intensity: str = "none"

    def __post_init__(self) -> None:
        if int(self.image_size) <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if not (math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"std must be a positive finite number, got {self.std}")
        if self.intensity not in INTENSITY_METHODS:
            raise ValueError(f"intensity must be one of {', '.join(INTENSITY_METHODS)}, got "
                             f"{self.intensity!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        missing = {"image_size", "mean", "std"} - set(data)
        if missing:
            raise ValueError(f"PreprocessConfig needs keys image_size, mean, std; "
                             f"missing {sorted(missing)}")
        return cls(image_size=int(data["image_size"]), mean=float(data["mean"]),
                   std=float(data["std"]), intensity=str(data.get("intensity", "none")))


class LetterboxBox(NamedTuple):
    """Where the resized content sits inside the S x S letterboxed image."""

    top: int
    left: int
    height: int
    width: int


def to_grayscale_float(img: np.ndarray) -> np.ndarray:
    """Any supported image array -> float32 H x W in [0, 1].

    Accepted: H x W, H x W x 1, H x W x 3 (RGB, converted to BT.601 luma) or H x W x 4 (RGBA,
    alpha dropped), with dtype uint8 (/255), uint16 (divided by the smallest 10/12/14/16-bit
    full scale that covers its maximum, since PNG/array storage does not record the detector's
    bit depth and a 12-bit radiograph divided by 65535 would be nearly black) or float
    (kept if already in [0, 1], else min-max rescaled; NaN/inf rejected).
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(img).__name__}")
    shape_ok = img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))
    dtype_ok = img.dtype in (np.uint8, np.uint16) or np.issubdtype(img.dtype, np.floating)
    if not (shape_ok and dtype_ok) or img.size == 0:
        raise ValueError(
            f"unsupported image: shape {img.shape}, dtype {img.dtype}; accepted: HxW, HxWx1, "
            f"HxWx3 (RGB) or HxWx4 (RGBA), non-empty, dtype uint8, uint16 or float"
        )
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        peak = int(img.max())
        bits = next(b for b in _UINT16_DEPTHS if peak <= 2**b - 1)
        out = img.astype(np.float32) / float(2**bits - 1)
    else:
        out = img.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"image (shape {img.shape}, dtype {img.dtype}) contains NaN or inf")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    if out.ndim == 3:
        out = out[..., 0] if out.shape[2] == 1 else out[..., :3] @ _LUMA
    return np.ascontiguousarray(out, dtype=np.float32)


def letterbox_with_box(img: torch.Tensor, size: int) -> tuple[torch.Tensor, LetterboxBox]:
    """Aspect-preserving resize of (1 H W) or (b 1 H W) so the longer side is ``size``, then
    zero-pad to ``size x size`` with the content centred. Returns the image and its box.

    Antialiased bilinear (``F.interpolate(antialias=True)``): downscaling a 2-3k px
    radiograph without antialiasing aliases fine lines (e.g. rib edges) into moire.
    """
    if img.ndim not in (3, 4) or img.shape[-3] != 1:
        raise ValueError(f"letterbox expects (1, H, W) or (B, 1, H, W), got {tuple(img.shape)}")
    if int(size) <= 0:
        raise ValueError(f"size must be positive, got {size}")
    batched = img.ndim == 4
    x = img if batched else img.unsqueeze(0)
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    new_h, new_w = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    x = x.float()
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                          antialias=True)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    x = F.pad(x, (left, size - new_w - left, top, size - new_h - top), value=0.0)
    return (x if batched else x.squeeze(0)), LetterboxBox(top, left, new_h, new_w)


def letterbox(img: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`letterbox_with_box` without the box."""
    return letterbox_with_box(img, size)[0]


def unletterbox(heatmap: np.ndarray | torch.Tensor, box: LetterboxBox,
                out_hw: tuple[int, int]) -> np.ndarray:
    """Map an (S S) map from letterboxed space back onto the original (H W) image: crop the
    content box, resize bilinearly to ``out_hw``. Returns float32 (H W)."""
    t = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    if t.ndim != 2:
        raise ValueError(f"unletterbox expects a 2-D map, got shape {tuple(t.shape)}")
    crop = t[box.top:box.top + box.height, box.left:box.left + box.width]
    out = F.interpolate(crop[None, None], size=tuple(out_hw), mode="bilinear",
                        align_corners=False)
    return out[0, 0].numpy()


def normalise(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """(x - mean) / std with the model's training statistics."""
    return (x - cfg.mean) / cfg.std


def equalize_histogram(x: torch.Tensor, box: LetterboxBox | None = None) -> torch.Tensor:
    """Histogram equalisation of a (1 S S) [0, 1] image over its content ``box`` (the
    letterbox padding stays 0 and is not counted), on 256 levels.

    Each content pixel becomes the share of content pixels at or below its level (the
    classic ``(cdf - cdf_min) / (n - cdf_min)``), so any strictly increasing change of
    intensities (contrast, brightness, gamma) gives the same output. Deterministic and exact
    for 8-bit data; images spanning fewer than ``MIN_EQUALIZE_LEVELS`` levels are returned
    unchanged.
    """
    if x.ndim != 3 or x.shape[0] != 1:
        raise ValueError(f"equalize_histogram expects (1, S, S), got {tuple(x.shape)}")
    top, left, h, w = box if box is not None else (0, 0, x.shape[1], x.shape[2])
    content = x[0, top:top + h, left:left + w]
    levels = content.mul(255.0).round_().clamp_(0, 255).to(torch.int64)
    lo, hi = int(levels.min()), int(levels.max())
    if hi - lo < MIN_EQUALIZE_LEVELS:
        return x
    cdf = torch.bincount(levels.flatten(), minlength=256).cumsum(0).double()
    first, n = float(cdf[lo]), float(levels.numel())
    lut = ((cdf - first) / (n - first)).clamp_(0.0, 1.0).float()
    out = x.clone()
    out[0, top:top + h, left:left + w] = lut[levels]
    return out


def standardise_intensity(x: torch.Tensor, box: LetterboxBox | None,
                          cfg: PreprocessConfig) -> torch.Tensor:
    """The model's intensity standardisation (``cfg.intensity``) of a (1 S S) [0, 1] image."""
    if cfg.intensity == "equalize":
        return equalize_histogram(x, box)
    return x


def letterboxed01(img: np.ndarray, size: int) -> tuple[torch.Tensor, LetterboxBox]:
    """np image -> (1 S S) float32 in [0, 1], letterboxed, and its content box: the part of
    the path that training caches (it does not depend on the model's statistics)."""
    return letterbox_with_box(torch.from_numpy(to_grayscale_float(img)).unsqueeze(0), size)


def finish_input(x01: torch.Tensor, box: LetterboxBox | None, cfg: PreprocessConfig
                 ) -> torch.Tensor:
    """Letterboxed (1 S S) [0, 1] image (augmented or not) -> the model's input."""
    return normalise(standardise_intensity(x01, box, cfg), cfg)


def model_input(img: np.ndarray, cfg: PreprocessConfig) -> tuple[torch.Tensor, LetterboxBox]:
    """THE preprocessing: decoded pixels -> normalised (1 S S) model input and the letterbox
    box (to put heat maps back onto the image). Serving, evaluation and training (through
    :func:`letterboxed01` + :func:`finish_input`) all take this path."""
    x01, box = letterboxed01(img, cfg.image_size)
    return finish_input(x01, box, cfg), box


def to_letterboxed_tensor(img: np.ndarray, size: int) -> torch.Tensor:
    """np image -> (1 S S) float32 in [0, 1], letterboxed (no standardisation)."""
    return letterboxed01(img, size)[0]


def preprocess(img: np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """np image -> normalised (1 S S) float32 tensor, as the model sees it at inference."""
    return model_input(img, cfg)[0]


def preprocess_batch(images: list[np.ndarray], cfg: PreprocessConfig) -> torch.Tensor:
    """list of np images -> (b 1 S S)."""
    if len(images) == 0:
        raise ValueError("preprocess_batch needs at least one image")
    return torch.stack([preprocess(im, cfg) for im in images])


def compute_intensity_stats(images: Iterable[np.ndarray], image_size: int,
                            intensity: str = "none") -> tuple[float, float]:
    """Mean and std of letterboxed, standardised [0, 1] images (padding included: the model
    sees it too).

    Accumulated in float64 over pixels so the result does not depend on batch order.
    """
    cfg = PreprocessConfig(image_size=image_size, mean=0.0, std=1.0, intensity=intensity)
    n, s, ss = 0, 0.0, 0.0
    for img in images:
        x = model_input(img, cfg)[0].double()
        n += x.numel()
        s += float(x.sum())
        ss += float((x * x).sum())
    if n == 0:
        raise ValueError("compute_intensity_stats needs at least one image")
    mean = s / n
    std = math.sqrt(max(ss / n - mean * mean, 0.0))
    return mean, max(std, 1e-6)


class TrainAugment:
    """Random geometric and intensity augmentation for letterboxed [0, 1] (1 S S) tensors.

    Apply it before :func:`normalise` (gamma needs non-negative intensities).

    * rotation (+-``max_rotation_deg``) and isotropic scale in one ``affine_grid`` /
      ``grid_sample`` warp, zero padding (matching the letterbox padding);
    * contrast (around the image mean), brightness (additive), gamma;
    * optional acquisition-quality changes (off by default): a lower resolution (down by up
      to ``downscale_max`` and back, antialiased) and Gaussian noise (std up to
      ``noise_std_max``), each on half of the images -- sources differ in detector noise and
      in the resolution their films were exported at, and neither says anything about the
      disease;
    * horizontal flip **never for chest X-rays**: anatomy is lateralised (heart on the left,
      situs inversus and dextrocardia are findings; the side of an opacity matters), so a
      flipped CXR is not a valid CXR. Retinal OCT B-scans may be flipped (``hflip_oct``):
      left/right eye scans are mirror images of each other.

    ``modality_aware=False`` treats every image like a CXR (no flips at all).
    Randomness comes only from ``generator`` (constructor default or per-call), so a seeded
    generator reproduces the same draws.
    """

    def __init__(self, *, modality_aware: bool = True, max_rotation_deg: float = 7.0,
                 scale: tuple[float, float] = (0.9, 1.1),
                 contrast: tuple[float, float] = (0.85, 1.15), brightness: float = 0.1,
                 gamma: tuple[float, float] = (0.85, 1.15), hflip_oct: bool = True,
                 noise_std_max: float = 0.0, downscale_max: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        for name, (lo, hi) in (("scale", scale), ("contrast", contrast), ("gamma", gamma)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got "
                                 f"{(lo, hi)}")
        if max_rotation_deg < 0 or brightness < 0 or noise_std_max < 0:
            raise ValueError("max_rotation_deg, brightness and noise_std_max must be >= 0")
        if downscale_max < 1:
            raise ValueError(f"downscale_max must be >= 1 (1 = off), got {downscale_max}")
        self.modality_aware = modality_aware
        self.max_rotation_deg = float(max_rotation_deg)
        self.scale = scale
        self.contrast = contrast
        self.brightness = float(brightness)
        self.gamma = gamma
        self.hflip_oct = hflip_oct
        self.noise_std_max = float(noise_std_max)
        self.downscale_max = float(downscale_max)
        self.generator = generator

    @staticmethod
    def _modality(class_key: str | None, modality: str | None) -> str | None:
        if modality is None and class_key is not None:
            if class_key in ("cxr", "oct"):
                return class_key
            try:
                return modality_of(class_key)
            except KeyError:
                raise ValueError(f"unknown class key {class_key!r} for augmentation") from None
        if modality not in (None, "cxr", "oct"):
            raise ValueError(f"modality must be 'cxr' or 'oct', got {modality!r}")
        return modality

    def _uniform(self, lo: float, hi: float, g: torch.Generator | None) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def may_flip(self, modality: str | None) -> bool:
        return self.modality_aware and self.hflip_oct and modality == "oct"

    def __call__(self, image: torch.Tensor, class_key: str | None = None, *,
                 modality: str | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """(1 S S) [0, 1] -> augmented (1 S S) [0, 1]; ``class_key`` or ``modality`` picks
        the flip policy (unknown modality: no flip, the safe choice)."""
        if image.ndim != 3 or image.shape[0] != 1:
            raise ValueError(f"TrainAugment expects (1, S, S), got {tuple(image.shape)}")
        g = generator if generator is not None else self.generator
        mod = self._modality(class_key, modality)
        angle = math.radians(self._uniform(-self.max_rotation_deg, self.max_rotation_deg, g))
        zoom = self._uniform(*self.scale, g)
        flip = self.may_flip(mod) and bool(torch.rand((), generator=g) < 0.5)
        c, b = self._uniform(*self.contrast, g), self._uniform(-self.brightness,
                                                                  self.brightness, g)
        gam = self._uniform(*self.gamma, g)

        # affine_grid maps output coords to input coords: scale by 1/zoom to enlarge by zoom.
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        sx = -cos if flip else cos
        sy = -sin if flip else sin
        theta = torch.tensor([[sx, -sin, 0.0], [sy, cos, 0.0]], dtype=torch.float32)
        x = image.float().unsqueeze(0)
        grid = F.affine_grid(theta.unsqueeze(0), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[0]

        mean = x.mean()
        x = ((x - mean) * c + mean + b).clamp(0.0, 1.0).pow(gam)
        # Drawn only when enabled, so the default keeps the random stream it always had.
        if self.downscale_max > 1 and bool(torch.rand((), generator=g) < 0.5):
            x = self._lower_resolution(x, self._uniform(1.0, self.downscale_max, g))
        if self.noise_std_max > 0 and bool(torch.rand((), generator=g) < 0.5):
            sigma = self._uniform(0.0, self.noise_std_max, g)
            x = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)
        return x

    @staticmethod
    def _lower_resolution(x: torch.Tensor, factor: float) -> torch.Tensor:
        size = x.shape[-2:]
        small = [max(4, round(s / factor)) for s in size]
        down = F.interpolate(x[None], size=small, mode="bilinear", align_corners=False,
                             antialias=True)
        return F.interpolate(down, size=tuple(size), mode="bilinear", align_corners=False)[0]
