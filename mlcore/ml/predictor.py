"""Predictor: one loaded model version answering "what is on this image?".

Loaded ONCE per worker process per model version (download, build, eval); every call runs
under ``torch.inference_mode`` and a lock around the model (PyTorch modules are not safe to
call from several threads at once while attention capture stores per-call state).

A result carries calibrated probabilities (temperature from the bundle) within the image's
scope (chest X-ray or retinal OCT: from the caller's header hint, else decided by the model,
``mlcore.ml.scope``), the out-of-scope verdict with a percentile a reader can weigh, the
attention-rollout heat map from the SAME forward pass (no second pass), the letterbox box to
put that map back on the original image, and the model version.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mlcore.ml.bundle import ModelBundle
from mlcore.ml.drift.features import image_features, raw_image_stats, study_vector
from mlcore.ml.evaluation.calibration import softmax_with_temperature
from mlcore.ml.evaluation.inference import forward_logits_embeddings
from mlcore.ml.evaluation.ood import input_descriptor, input_std
from mlcore.ml.explain_methods import ATTRIBUTION_METHODS
from mlcore.ml.scope import SCOPE_NAMES, SCOPES, restrict, scope_mass
from mlcore.ml.transforms import LetterboxBox, model_input, unletterbox

ACCEPTED = ("2-D (H, W) arrays of dtype uint8, uint16 or float32, or (H, W, 3) RGB arrays of "
            "those dtypes, at least 8 px per side")
_DTYPES = (np.uint8, np.uint16, np.float32)
MIN_SIDE = 8
Attribution = Literal["integrated_gradients", "grad_cam"]  # for type checkers; the list is ATTRIBUTION_METHODS
ScopeSource = Literal["header", "model", "undecided"]


@dataclass(frozen=True)
class PredictionResult:
    """``probabilities`` cover the classes of ``scope`` only, renormalised; when the scope is
    undecided they are all nine calibrated probabilities, ``top_class`` is "" and the image
    is out of scope (read without the AI)."""

    probabilities: dict[str, float]
    top_class: str
    confidence: float
    out_of_scope: bool
    ood_score: float
    model_name: str
    model_version: str
    heatmap: np.ndarray | None = field(repr=False)  # (S, S) float32 [0, 1] at model input
    letterbox: LetterboxBox
    original_shape: tuple[int, int]
    latency_ms: float
    ood_reason: str | None = None
    scope: str | None = None  # "cxr" | "oct" | None (undecided)
    scope_source: ScopeSource = "model"
    scope_probability: float | None = None  # the model's mass on the leading scope
    ood_percentile: float | None = None  # share of in-scope val images scoring lower
    ood_threshold_percentile: float | None = None  # the flag threshold, in the same units
    # What drift detection keeps of this image: float32 [20 image features | CLS embedding]
    # (mlcore.ml.drift.features.study_vector); None when the caller did not ask for it.
    drift_features: np.ndarray | None = field(default=None, repr=False)

    def heatmap_on_original(self) -> np.ndarray | None:
        """The heat map mapped back onto the original (H, W) image."""
        if self.heatmap is None:
            return None
        return unletterbox(self.heatmap, self.letterbox, self.original_shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the heat map is stored separately, as an array or PNG)."""
        return {
            "probabilities": dict(self.probabilities),
            "top_class": self.top_class,
            "confidence": self.confidence,
            "out_of_scope": self.out_of_scope,
            "ood_score": self.ood_score if np.isfinite(self.ood_score) else None,
            "ood_reason": self.ood_reason,
            "ood_percentile": self.ood_percentile,
            "ood_threshold_percentile": self.ood_threshold_percentile,
            "scope": self.scope,
            "scope_source": self.scope_source,
            "scope_probability": self.scope_probability,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "letterbox": self.letterbox._asdict(),
            "original_shape": list(self.original_shape),
            "latency_ms": self.latency_ms,
        }


def validate_image(img: Any, index: int = 0) -> np.ndarray:
    """Return ``img`` if it is an accepted image array, else ValueError saying why."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"image {index}: expected a numpy array, got {type(img).__name__}; "
                         f"accepted: {ACCEPTED}")
    shape_ok = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)
    if not shape_ok or img.dtype not in _DTYPES:
        raise ValueError(f"image {index}: got shape {img.shape} dtype {img.dtype}; "
                         f"accepted: {ACCEPTED}")
    if min(img.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image {index}: {img.shape[0]}x{img.shape[1]} px is too small; "
                         f"accepted: {ACCEPTED}")
    return img


class Predictor:
    def __init__(self, bundle: ModelBundle, *, device: str = "cpu", version: str,
                 model_uri: str) -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.version = str(version)
        self.model_uri = model_uri
        self.model = bundle.build(self.device)
        self.image_size = bundle.image_size
        self.is_vit = bool(getattr(self.model, "is_vit", False))
        self._lock = threading.Lock()

    @classmethod
    def from_uri(cls, model_uri: str, *, tracking_uri: str, device: str = "cpu",
                 cache_dir: str | Path | None = None) -> Predictor:
        """Resolve ``models:/name@alias`` or ``models:/name/N`` to a version, download that
        version's bundle and load it."""
        from mlcore.ml import tracking  # MLflow (seconds): only for predictors loaded from the registry

        name, _, _ = tracking.parse_model_uri(model_uri)
        version = tracking.resolve_version(model_uri, tracking_uri=tracking_uri)
        bundle_dir = tracking.download_bundle(f"models:/{name}/{version}", cache_dir,
                                              tracking_uri=tracking_uri)
        return cls(ModelBundle.load(bundle_dir), device=device, version=version,
                   model_uri=model_uri)

    # -- input ---------------------------------------------------------------------------
    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[LetterboxBox],
                                                              list[tuple[int, int]]]:
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ValueError(f"predict takes a sequence (list) of images, got "
                             f"{type(images).__name__}; each: {ACCEPTED}")
        if len(images) == 0:
            raise ValueError(f"predict needs at least one image; each: {ACCEPTED}")
        cfg = self.bundle.preprocess
        xs, boxes, shapes = [], [], []
        for i, img in enumerate(images):
            img = validate_image(img, i)
            x, box = model_input(img, cfg)
            xs.append(x)
            boxes.append(box)
            shapes.append((int(img.shape[0]), int(img.shape[1])))
        return torch.stack(xs), boxes, shapes

    # -- model call ----------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, explain: bool) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray | None]:
        """``b 1 S S -> logits, CLS embeddings, heat maps (b S S) or None``."""
        from mlcore.ml.explain import grad_cam, rollout_maps  # captum (a second): on the first prediction

        x = x.to(self.device)
        with self._lock:
            if explain and self.is_vit:
                previous = self.model.set_attention_capture(True)
                try:
                    with torch.inference_mode():
                        logits, emb = forward_logits_embeddings(self.model, x)
                        maps = rollout_maps(self.model, self.model.captured_attentions(),
                                            (self.image_size, self.image_size))
                finally:
                    self.model.set_attention_capture(previous)
            else:
                with torch.inference_mode():
                    logits, emb = forward_logits_embeddings(self.model, x)
                maps = None
                if explain:  # no attention maps (CNN): Grad-CAM of the predicted class
                    maps = grad_cam(self.model, x, target=logits.argmax(dim=1).tolist())
        return (logits.double().cpu().numpy(), emb.double().cpu().numpy(),
                None if maps is None else np.asarray(maps, dtype=np.float32))

    def predict(self, images: Sequence[np.ndarray], *, explain: bool = True,
                scopes: Sequence[str | None] | None = None,
                drift_features: bool = False) -> list[PredictionResult]:
        """Calibrated prediction per image; ``latency_ms`` is this call's wall time.

        ``scopes``: per image, "cxr" or "oct" when the file's header says so (it wins over
        the model), or None to let the model decide. ``drift_features``: also return each
        image's drift vector (image statistics + the embedding of this same forward pass).
        """
        t0 = time.perf_counter()
        x, boxes, shapes = self._prepare(images)
        hints = list(scopes) if scopes is not None else [None] * len(boxes)
        if len(hints) != len(boxes) or any(h not in (None, *SCOPES) for h in hints):
            raise ValueError(f"scopes must give one of None, {', '.join(SCOPES)} per image; "
                             f"got {hints!r} for {len(boxes)} images")
        logits, emb, maps = self._forward(x, explain)
        probs = softmax_with_temperature(logits, self.bundle.temperature)
        cfg = self.bundle.preprocess
        stds = input_std(x, cfg.mean, cfg.std)
        ood = self.bundle.ood
        percentiles = threshold_pct = None
        descriptors = (input_descriptor(x, cfg.mean, cfg.std)
                       if ood is not None or drift_features else None)
        vectors: list[np.ndarray | None] = [None] * len(boxes)
        if drift_features:
            feats = image_features(np.stack([raw_image_stats(im) for im in images]), descriptors)
            vectors = [study_vector(f, e) for f, e in zip(feats, emb, strict=True)]
        if ood is not None:
            flags, scores, reasons = ood.flag(emb, descriptors, stds)
            percentiles = ood.percentile(scores)
            threshold_pct = 100.0 * ood.threshold_quantile
        else:  # a bundle without a detector still refuses blank images
            flags = stds < 2.0 / 255.0
            scores = np.full(len(stds), np.nan)
            reasons = ["near-constant image" if f else None for f in flags]
        keys = self.bundle.class_keys
        masses = scope_mass(probs, keys)
        rule = self.bundle.scope_rule
        out = []
        for i in range(len(boxes)):
            calibrated = {k: float(p) for k, p in zip(keys, probs[i], strict=True)}
            model_scope, share = rule.decide(masses[i])
            scope, source = (hints[i], "header") if hints[i] else (
                (model_scope, "model") if model_scope else (None, "undecided"))
            flagged, reason = bool(flags[i]), reasons[i]
            if scope is None:
                chest, retina = masses[i]
                probabilities, top, confidence = calibrated, "", 0.0
                flagged = True
                reason = reason or (
                    f"could not tell a {SCOPE_NAMES['cxr']} from a {SCOPE_NAMES['oct']} "
                    f"({100 * chest:.0f} % vs {100 * retina:.0f} %; the model decides at "
                    f"{100 * rule.threshold:.0f} %)")
            else:
                probabilities = restrict(calibrated, scope)
                top = max(probabilities, key=probabilities.__getitem__)
                confidence = probabilities[top]
            out.append(PredictionResult(
                probabilities=probabilities,
                top_class=top,
                confidence=float(confidence),
                out_of_scope=flagged,
                ood_score=float(scores[i]),
                ood_reason=reason,
                model_name=self.bundle.model_name,
                model_version=self.version,
                heatmap=None if maps is None else maps[i],
                letterbox=boxes[i],
                original_shape=shapes[i],
                latency_ms=0.0,
                scope=scope,
                scope_source=source,
                scope_probability=float(share),
                ood_percentile=None if percentiles is None else float(percentiles[i]),
                ood_threshold_percentile=threshold_pct,
                drift_features=vectors[i],
            ))
        latency = (time.perf_counter() - t0) * 1000.0
        return [dataclasses.replace(r, latency_ms=latency) for r in out]

    def explain_attribution(self, image: np.ndarray, method: Attribution = "integrated_gradients",
                            *, target: str | None = None) -> np.ndarray:
        """On-demand attribution map (S, S) in [0, 1] for ``target`` (default: top class)."""
        from mlcore.ml.explain import grad_cam, integrated_gradients  # captum: see _forward

        if method not in ATTRIBUTION_METHODS:
            raise ValueError(f"unknown attribution method {method!r}; accepted: "
                             f"{', '.join(ATTRIBUTION_METHODS)}")
        fns = {"integrated_gradients": integrated_gradients, "grad_cam": grad_cam}
        x, _, _ = self._prepare([image])
        idx = None
        if target is not None:
            if target not in self.bundle.class_keys:
                raise ValueError(f"unknown target class {target!r}; accepted: "
                                 f"{', '.join(self.bundle.class_keys)}")
            idx = self.bundle.class_keys.index(target)
        with self._lock:
            maps = fns[method](self.model, x.to(self.device), target=idx)
        return np.asarray(maps, dtype=np.float32)[0]
