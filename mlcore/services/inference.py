"""The inference service the clinical side calls. It owns model choice (routing).

One ``Predictor`` per worker process per model version, loaded on first use and kept;
routing is a deterministic hash of the study UID so a study always lands on the same arm.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from mlcore.ml.classes import URGENT_KEYS
from mlcore.ml.explain_methods import ATTRIBUTION_METHODS as ATTRIBUTION_METHODS  # for the clinical side
from mlcore.models import RolloutPolicy
from mlcore.selectors import alias_map


class NoModelAvailable(RuntimeError):
    """No production model is registered; training one (make run does) fixes it."""


@dataclass(frozen=True)
class ModelRoute:
    name: str
    version: str
    arm: str  # production | canary | shadow

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


_lock = threading.Lock()
_predictors: dict[tuple[str, str], object] = {}


def canary_bucket(study_uid: str) -> int:
    """0..99, stable for a study UID (so re-runs and retries route the same way)."""
    digest = hashlib.sha256(study_uid.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def shadow_bucket(study_uid: str) -> int:
    """0..99, stable for a study UID and independent of :func:`canary_bucket` (a salted
    hash), so the shadow share samples production- and canary-served studies alike."""
    digest = hashlib.sha256(b"shadow:" + study_uid.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def shadow_route(*, study_uid: str, served_version: str, name: str | None = None) -> ModelRoute | None:
    """The shadow route of ``study_uid`` once its production (or canary) prediction by
    ``served_version`` has succeeded, or None: shadow off, no candidate, the candidate is
    the version in production or canary (or the one that served), or the study falls
    outside the shadow share. A read of the mirror only, like :func:`choose_model`."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    policy = RolloutPolicy.objects.filter(name=name).first()
    if policy is None or not policy.shadow_candidate:
        return None
    aliases = alias_map(name=name)
    candidate = aliases.get("candidate")
    if not candidate or candidate in (aliases.get("production"), aliases.get("canary"), served_version):
        return None
    if shadow_bucket(study_uid) >= policy.shadow_percent:
        return None
    return ModelRoute(name, candidate, "shadow")


def choose_model(*, study_uid: str, name: str | None = None) -> ModelRoute:
    """The route of ``study_uid``: a read of the registry mirror only (it runs inside the
    upload transaction, so it must not call MLflow or write). The services that move aliases
    refresh the mirror, and so does the periodic ``mlcore.registry_refresh`` task."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    aliases = alias_map(name=name)
    if "production" not in aliases:
        raise NoModelAvailable(
            f"no model version of {name!r} carries the 'production' alias; train one with "
            "`manage.py train_model --alias production` (make run does this for the demo)"
        )
    policy = RolloutPolicy.objects.filter(name=name).first()
    if "canary" in aliases and policy and canary_bucket(study_uid) < policy.canary_percent:
        return ModelRoute(name, aliases["canary"], "canary")
    return ModelRoute(name, aliases["production"], "production")


def get_predictor(route: ModelRoute):
    # torch and MLflow: loaded in the inference worker on first use, never in web processes
    from mlcore.ml import tracking
    from mlcore.ml.predictor import Predictor

    key = (route.name, route.version)
    with _lock:
        predictor = _predictors.get(key)
        if predictor is None:
            # MLflow resolves models:/ URIs through its process-wide registry URI, which
            # defaults to ./mlruns, not to our settings: point it at the configured store.
            tracking.configure(settings.MLFLOW_TRACKING_URI)
            predictor = Predictor.from_uri(
                route.uri,
                tracking_uri=settings.MLFLOW_TRACKING_URI,
                cache_dir=settings.VAR_DIR / "model-cache" / route.name / route.version,
            )
            _predictors[key] = predictor
    return predictor


def predict_images(*, route: ModelRoute, images: Sequence[np.ndarray], explain: bool = True,
                   scopes: Sequence[str | None] | None = None,
                   drift_features: bool = False) -> list:
    """Calibrated predictions (``mlcore.ml.predictor.PredictionResult``) for ``images``;
    ``scopes`` gives each image's scope from its header ("cxr"/"oct") or None."""
    return get_predictor(route).predict(list(images), explain=explain, scopes=scopes,
                                        drift_features=drift_features)


def explain_attribution(*, route: ModelRoute, image: np.ndarray, method: str,
                        target: str | None = None) -> np.ndarray:
    return get_predictor(route).explain_attribution(image, method=method, target=target or None)


@dataclass(frozen=True)
class TriageOutput:
    """What the clinical side stores for one image: plain values and encoded artefacts."""

    model_name: str
    model_version: str
    arm: str
    probabilities: dict[str, float]
    top_class: str
    confidence: float
    out_of_scope: bool
    ood_score: float | None  # None when the model has no out-of-scope detector
    ood_reason: str | None
    # How unusual the image is: the share of the model's in-scope validation images that
    # score lower, and the share at which it flags (None for models without these).
    ood_percentile: float | None
    ood_threshold_percentile: float | None
    scope: str  # "cxr" | "oct" | "" (undecided: no class shown, read without the AI)
    scope_source: str  # "header" | "model" | "undecided"
    scope_probability: float | None  # the model's probability mass on the leading scope
    urgent_probability: float
    latency_ms: float
    heatmap_png: bytes | None  # RGBA colour map, image aspect, <= HEATMAP_MAX_SIDE px (client stretches it)
    heatmap_npy: bytes | None  # float32 in [0, 1], same grid as the PNG
    # float32 little-endian drift vector (image statistics + embedding); the clinical side
    # hands the whole output to mlcore.services.drift.drift_observation_record.
    drift_features: bytes | None = None


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


# The rollout map comes from a 14x14-16x16 token grid: 256 px on the longer side keeps all
# its detail, and encoding a full-size (e.g. 3000 x 2500) RGBA PNG cost 0.2-0.5 s per image.
HEATMAP_MAX_SIDE = 256


def _fit_map(heat: np.ndarray, max_side: int = HEATMAP_MAX_SIDE) -> np.ndarray:
    h, w = heat.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return heat.astype(np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = PILImage.fromarray(heat.astype(np.float32)).resize(size, PILImage.Resampling.BILINEAR)
    return np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)


SCOPE_HINTS = ("cxr", "oct")


def triage_image(*, route: ModelRoute, pixels: np.ndarray, scope: str | None = None,
                 explain: bool | None = None) -> TriageOutput:
    """Predict one display image (uint8 H x W) and encode its heat map. ``scope`` is the
    study's scope from its DICOM header ("cxr"/"oct"); anything else lets the model decide.
    ``explain`` defaults to on, except for the shadow arm: nobody sees a shadow's heat map,
    and skipping it keeps the shadow's turn on the shared inference worker short."""
    from mlcore.ml.explain import heatmap_png  # torch: inference worker only (see get_predictor)

    if explain is None:
        explain = route.arm != "shadow"
    hint = scope if scope in SCOPE_HINTS else None
    result = predict_images(route=route, images=[pixels], explain=explain, scopes=[hint],
                            drift_features=True)[0]
    heat = result.heatmap_on_original()
    heat = _fit_map(heat) if heat is not None else None
    return TriageOutput(
        model_name=route.name,
        model_version=route.version,
        arm=route.arm,
        probabilities={k: float(v) for k, v in result.probabilities.items()},
        top_class=result.top_class,
        confidence=float(result.confidence),
        out_of_scope=bool(result.out_of_scope),
        ood_score=float(result.ood_score) if np.isfinite(result.ood_score) else None,
        ood_reason=result.ood_reason,
        ood_percentile=result.ood_percentile,
        ood_threshold_percentile=result.ood_threshold_percentile,
        scope=result.scope or "",
        scope_source=result.scope_source,
        scope_probability=result.scope_probability,
        urgent_probability=float(sum(v for k, v in result.probabilities.items() if k in URGENT_KEYS)),
        latency_ms=float(result.latency_ms),
        heatmap_png=heatmap_png(heat) if heat is not None else None,
        heatmap_npy=_npy_bytes(heat) if heat is not None else None,
        drift_features=(None if result.drift_features is None
                        else result.drift_features.astype("<f4").tobytes()),
    )


def attribution_png(*, route: ModelRoute, pixels: np.ndarray, method: str, target: str | None = None) -> bytes:
    """Captum attribution (a key of ``ATTRIBUTION_METHODS``) as an RGBA overlay PNG
    at the original image size (the map is computed in letterboxed model space). ``target``
    is the class to explain: the prediction's top class within its scope (an argmax over all
    nine classes could explain a retinal class on a chest film)."""
    # torch: inference worker only (see get_predictor)
    import torch

    from mlcore.ml.explain import heatmap_png
    from mlcore.ml.transforms import letterbox_with_box, unletterbox

    model_map = explain_attribution(route=route, image=pixels, method=method, target=target)
    _, box = letterbox_with_box(torch.zeros(1, *pixels.shape[:2]), model_map.shape[-1])
    return heatmap_png(_fit_map(unletterbox(model_map, box, pixels.shape[:2])))
