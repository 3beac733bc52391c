"""Out-of-scope detection: "this is not a scan the model was trained for".

Score (why this combination): two class-conditional Gaussian (Mahalanobis) distances, each
with one shared, shrunk covariance fitted on TRAIN images, combined by max after dividing
each by its OWN tail on in-scope VAL images (its ``1 - (1 - q) / 2`` quantile, 99.5 % for the
default q = 0.99), so each distance flags on its own terms. Dividing both by the val median
instead (the first version) let the heavier-tailed embedding distance set one common
threshold at ~8x the median, under which uniform noise and photographs passed the input
descriptor unflagged on the real-cxr model (7 of 40 noise images flagged; now all).

- on the CLS embedding (``forward_head(tokens, pre_logits=True)``): catches inputs that look
  like nothing the network learnt (Lee et al. 2018), but a briefly trained or tiny network
  maps some junk close to a class mean;
- on a small input descriptor (8x8 intensity layout, quantiles, edge energy, and the share
  of spectral power in 8 log-spaced radial frequency bands) of the model input:
  model-independent, catches gross junk (noise, documents, textures, photos) even when the
  embedding is weak. The spectral bands were added for the starter model: down-scaled noise
  and 1/f photograph-like textures passed the rest (generated probes flagged 92 % -> 96 %,
  in-scope false flags unchanged within one image; docs/benchmarks.md). Descriptors only
  ever grow by appending, so a detector fitted on an older, shorter descriptor scores its
  prefix.

The flag threshold is the 99th percentile of the combined score on in-scope VAL images
(~1 % false flags by construction). The val scores' quantiles are kept too, so a score can be
told to a reader as "more unusual than N % of the validation images" (:meth:`percentile`).
A near-constant image (std < 2/255) is flagged before any of this: it carries no signal and
Mahalanobis distances of degenerate inputs are meaningless.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

MIN_INPUT_STD = 2.0 / 255.0
SCORE_NAME = "max(mahalanobis_cls/val_tail, mahalanobis_input/val_tail)"
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_PERCENTILE_POINTS = 201


def denormalise(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Model input back to [0, 1] intensities: ``b 1 h w``."""
    return x.float() * float(std) + float(mean)


def input_std(x: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """Per-image intensity std in [0, 1] units (``b 1 h w -> b``)."""
    return denormalise(x, mean, std).flatten(1).std(dim=1).cpu().numpy().astype(np.float64)


SPECTRAL_BANDS = 8


def spectral_shape(raw: torch.Tensor, bands: int = SPECTRAL_BANDS) -> torch.Tensor:
    """Log share of the (mean-removed) power spectrum in ``bands`` log-spaced radial
    frequency bands, from one cycle per image to the corner: ``b 1 h w -> b bands``.
    Radiographs put their power at low frequencies; noise spreads it flat."""
    img = raw[:, 0] - raw[:, 0].mean(dim=(1, 2), keepdim=True)
    power = torch.fft.rfft2(img).abs().square()
    h, w = img.shape[-2:]
    radius = torch.sqrt(torch.fft.fftfreq(h, dtype=img.dtype)[:, None] ** 2
                        + torch.fft.rfftfreq(w, dtype=img.dtype)[None, :] ** 2)
    edges = torch.logspace(float(np.log10(1.0 / max(h, w))), float(np.log10(0.71)), bands + 1,
                           dtype=img.dtype)
    total = power.sum(dim=(1, 2)) + 1e-12
    shares = [(power * ((radius >= lo) & (radius < hi))).sum(dim=(1, 2)) / total
              for lo, hi in itertools.pairwise(edges.tolist())]
    return torch.stack(shares, dim=1).add(1e-9).log()


def input_descriptor(x: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """Cheap, model-free description of each input: ``b 1 h w -> b 81``.

    64 = 8x8 mean intensity layout, 5 = intensity quantiles, 2 = log edge energy (x, y),
    2 = log std and mean |x - local mean| at 4x4 blocks (fine texture), 8 = spectral shape
    (:func:`spectral_shape`; appended last, see the module docstring).
    """
    raw = denormalise(x, mean, std)
    layout = F.adaptive_avg_pool2d(raw, 8).flatten(1)
    flat = raw.flatten(1)
    quant = torch.quantile(flat, torch.tensor(_QUANTILES, dtype=flat.dtype), dim=1).T
    dx = (raw[..., :, 1:] - raw[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (raw[..., 1:, :] - raw[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    local = F.avg_pool2d(raw, 4, stride=4) if min(raw.shape[-2:]) >= 4 else raw
    fine = (raw - F.interpolate(local, size=raw.shape[-2:], mode="nearest")).abs().mean((1, 2, 3))
    eps = 1e-4
    extras = torch.stack(
        [dx.add(eps).log(), dy.add(eps).log(), flat.std(dim=1).add(eps).log(), fine.add(eps).log()],
        dim=1,
    )
    return torch.cat([layout, quant, extras, spectral_shape(raw)], dim=1).cpu().numpy().astype(np.float64)


def _ledoit_wolf(centered: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance of already-centred rows (Ledoit & Wolf 2004), shrinkage >= 0.05.

    Small training sets have fewer images than feature dimensions; the plain covariance is
    then singular and its inverse would call every new image far away.
    """
    n, p = centered.shape
    s = centered.T @ centered / max(n, 1)
    mu = np.trace(s) / p
    target = mu * np.eye(p)
    delta = np.sum((s - target) ** 2) / p
    sq = np.einsum("ni,ni->n", centered, centered)
    quad = ((centered @ s) * centered).sum(axis=1)
    beta_terms = sq**2 - 2 * quad + np.sum(s**2)
    beta = min(float(beta_terms.sum() / max(n, 1) ** 2 / p), float(delta))
    shrink = 1.0 if delta <= 0 else beta / delta
    shrink = float(np.clip(shrink, 0.05, 1.0))
    return (1 - shrink) * s + shrink * target, shrink


@dataclass(slots=True)
class GaussianScorer:
    """Class-conditional means with one shared precision; score = min squared distance."""

    means: np.ndarray  # (K, D)
    precision: np.ndarray  # (D, D)

    @classmethod
    def fit(cls, feats: np.ndarray, labels: np.ndarray) -> GaussianScorer:
        feats = np.asarray(feats, dtype=np.float64)
        labels = np.asarray(labels)
        if feats.ndim != 2 or feats.shape[0] != labels.shape[0] or feats.shape[0] < 2:
            raise ValueError(
                f"need >= 2 feature rows (N, D) with N labels, got {feats.shape}, {labels.shape}"
            )
        classes = np.unique(labels)
        means = np.stack([feats[labels == c].mean(axis=0) for c in classes])
        centered = feats - means[np.searchsorted(classes, labels)]
        scale = centered.std(axis=0) + 1e-6 * (feats.std() + 1e-12)
        scale = np.where(scale > 0, scale, 1.0)
        cov, _ = _ledoit_wolf(centered / scale)
        precision = np.linalg.pinv(cov, hermitian=True) / np.outer(scale, scale)
        return cls(means=means, precision=(precision + precision.T) / 2)

    def score(self, feats: np.ndarray) -> np.ndarray:
        d = np.asarray(feats, dtype=np.float64)[:, None, :] - self.means[None]  # b k d
        q = ((d @ self.precision) * d).sum(axis=-1)  # b k
        return q.min(axis=1)


@dataclass(slots=True)
class OODDetector:
    feature: GaussianScorer
    input: GaussianScorer
    feature_scale: float
    input_scale: float
    threshold: float
    min_input_std: float = MIN_INPUT_STD
    score_name: str = SCORE_NAME
    # Score quantiles of the in-scope val images at 0, 0.5, ..., 100 %; None in bundles
    # written before they were kept.
    val_quantiles: np.ndarray | None = None
    threshold_quantile: float = 0.99

    @classmethod
    def fit(
        cls,
        *,
        train_embeddings: np.ndarray,
        train_descriptors: np.ndarray,
        train_labels: np.ndarray,
        val_embeddings: np.ndarray,
        val_descriptors: np.ndarray,
        quantile: float = 0.99,
    ) -> OODDetector:
        """Fit the Gaussians on TRAIN, scales and threshold on in-scope VAL images."""
        if len(val_embeddings) == 0:
            raise ValueError("OOD threshold needs in-scope val images; the val split is empty")
        feature = GaussianScorer.fit(train_embeddings, train_labels)
        inp = GaussianScorer.fit(train_descriptors, train_labels)
        tail = 1.0 - (1.0 - quantile) / 2.0
        f_scale = float(np.quantile(feature.score(val_embeddings), tail)) or 1.0
        i_scale = float(np.quantile(inp.score(val_descriptors), tail)) or 1.0
        det = cls(feature=feature, input=inp, feature_scale=f_scale, input_scale=i_scale,
                  threshold=float("inf"))
        val_scores = det.score(val_embeddings, val_descriptors)
        det.threshold = float(np.quantile(val_scores, quantile))
        det.threshold_quantile = float(quantile)
        det.val_quantiles = np.quantile(val_scores, np.linspace(0.0, 1.0, _PERCENTILE_POINTS))
        return det

    def percentile(self, scores: np.ndarray) -> np.ndarray | None:
        """Share (0-100) of in-scope validation images with a lower score than each score:
        how unusual an image is, in words a reader can weigh. None without kept quantiles."""
        if self.val_quantiles is None:
            return None
        grid = np.linspace(0.0, 100.0, len(self.val_quantiles))
        return np.interp(np.asarray(scores, dtype=np.float64), self.val_quantiles, grid)

    def score(self, embeddings: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        width = self.input.means.shape[1]  # a detector of an older, shorter descriptor: its prefix
        return np.maximum(
            self.feature.score(embeddings) / self.feature_scale,
            self.input.score(np.asarray(descriptors)[:, :width]) / self.input_scale,
        )

    def flag(
        self, embeddings: np.ndarray, descriptors: np.ndarray, stds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """``(flags, scores, reasons)``; reason is None for in-scope images."""
        scores = self.score(embeddings, descriptors)
        stds = np.asarray(stds, dtype=np.float64)
        flat = stds < self.min_input_std
        far = scores > self.threshold
        reasons: list[str | None] = [
            "near-constant image" if f else ("unlike training images" if o else None)
            for f, o in zip(flat, far, strict=True)
        ]
        return flat | far, scores, reasons

    # -- persistence (arrays go to an .npz, scalars to JSON) ---------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "feature_means": self.feature.means,
            "feature_precision": self.feature.precision,
            "input_means": self.input.means,
            "input_precision": self.input.precision,
        }
        if self.val_quantiles is not None:
            out["val_quantiles"] = np.asarray(self.val_quantiles, dtype=np.float64)
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "score_name": self.score_name,
            "threshold": self.threshold,
            "feature_scale": self.feature_scale,
            "input_scale": self.input_scale,
            "min_input_std": self.min_input_std,
            "threshold_quantile": self.threshold_quantile,
        }

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> OODDetector:
        return cls(
            feature=GaussianScorer(arrays["feature_means"], arrays["feature_precision"]),
            input=GaussianScorer(arrays["input_means"], arrays["input_precision"]),
            feature_scale=float(meta["feature_scale"]),
            input_scale=float(meta["input_scale"]),
            threshold=float(meta["threshold"]),
            min_input_std=float(meta.get("min_input_std", MIN_INPUT_STD)),
            score_name=str(meta.get("score_name", SCORE_NAME)),
            val_quantiles=arrays.get("val_quantiles"),
            threshold_quantile=float(meta.get("threshold_quantile", 0.99)),
        )
