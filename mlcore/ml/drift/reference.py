"""A model version's drift reference: what its in-scope validation images look like.

Kept per image: the 20 image features and the CLS embedding reduced to its first
:data:`PCA_COMPONENTS` principal components (fitted on the version's TRAINING images, each
component scaled to unit variance there: a projection fitted on the reference itself would
make fresh images look different, see :meth:`DriftReference.fit`); kept once: the PCA
(mean, components, scales) so window embeddings are projected the same way, and the
counts of predicted categories as served (class, or out of
scope). Stored as one ``.npz`` (``allow_pickle=False``; metadata as a JSON string): a few
tens of KB for a few hundred images. Written at training time next to the model (MLflow
run artefact ``drift/reference.npz``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcore.ml.drift.features import CATEGORIES, IMAGE_FEATURES, N_IMAGE_FEATURES, OUT_OF_SCOPE

if TYPE_CHECKING:
    from torch import nn

    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.evaluation.inference import ModelOutputs

REFERENCE_FORMAT = "radviewer-drift-reference/1"
ARTIFACT_PATH = "drift/reference.npz"
PCA_COMPONENTS = 16
MIN_REFERENCE = 20


class ReferenceError(ValueError):
    """A reference that cannot be built or read; the message says why."""


@dataclass(slots=True)
class DriftReference:
    embedding_mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d)
    scales: np.ndarray  # (k,)
    embeddings_pca: np.ndarray  # (n, k), standardised
    image_features: np.ndarray  # (n, 20)
    category_counts: np.ndarray  # (len(CATEGORIES),)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def fit(cls, *, embeddings: np.ndarray, image_features: np.ndarray,
            categories: Sequence[str], components: int = PCA_COMPONENTS,
            projection_embeddings: np.ndarray | None = None,
            meta: dict[str, Any] | None = None) -> DriftReference:
        """``projection_embeddings``: the images the PCA is fitted on -- the TRAINING images,
        never the reference's own. A PCA fitted on the reference puts the reference's spread
        into its leading components, so fresh images from the same distribution look less
        spread there, and MMD and KS see a difference that is not drift (measured: MMD false
        alarms 6-8 % at alpha 5 %, docs/benchmarks.md). Without them the reference itself is
        used and the metadata says so."""
        emb = np.asarray(embeddings, dtype=np.float64)
        feats = np.asarray(image_features, dtype=np.float64)
        n = len(emb)
        if emb.ndim != 2 or feats.shape != (n, N_IMAGE_FEATURES) or len(categories) != n:
            raise ReferenceError(f"need (n, d) embeddings, (n, {N_IMAGE_FEATURES}) image features "
                                 f"and n categories; got {emb.shape}, {feats.shape}, "
                                 f"{len(categories)}")
        if n < MIN_REFERENCE:
            raise ReferenceError(f"a reference needs at least {MIN_REFERENCE} images, got {n}")
        if not (np.isfinite(emb).all() and np.isfinite(feats).all()):
            raise ReferenceError("reference features contain NaN or inf")
        unknown = sorted(set(categories) - set(CATEGORIES))
        if unknown:
            raise ReferenceError(f"unknown categories {unknown}; accepted: {', '.join(CATEGORIES)}")
        basis = emb if projection_embeddings is None else np.asarray(projection_embeddings,
                                                                     dtype=np.float64)
        if basis.ndim != 2 or basis.shape[1] != emb.shape[1] or len(basis) < MIN_REFERENCE:
            raise ReferenceError(f"projection embeddings must be (>= {MIN_REFERENCE}, "
                                 f"{emb.shape[1]}), got {basis.shape}")
        if not np.isfinite(basis).all():
            raise ReferenceError("projection embeddings contain NaN or inf")
        mean = basis.mean(axis=0)
        _, s, vt = np.linalg.svd(basis - mean, full_matrices=False)
        k = int(min(components, len(basis) - 1, emb.shape[1]))
        scales = s[:k] / np.sqrt(len(basis) - 1)
        scales = np.where(scales > 1e-12, scales, 1.0)
        info = dict(meta or {})
        info["projection"] = ("the reference itself (biased: see DriftReference.fit)"
                              if projection_embeddings is None
                              else f"{len(basis)} separate images")
        ref = cls(embedding_mean=mean, components=vt[:k], scales=scales,
                  embeddings_pca=np.zeros((n, k)), image_features=feats.astype(np.float32),
                  category_counts=np.array([sum(c == cat for c in categories) for cat in CATEGORIES],
                                           dtype=np.int64),
                  meta=info)
        ref.embeddings_pca = ref.project(emb).astype(np.float32)
        return ref

    # -- use -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.embeddings_pca.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.embedding_mean.shape[0])

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """``(m, d)`` embeddings -> ``(m, k)`` standardised principal components."""
        emb = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        if emb.shape[1] != self.embedding_dim:
            raise ReferenceError(f"embeddings of width {emb.shape[1]} do not fit this reference "
                                 f"(width {self.embedding_dim}): features of another model?")
        return (emb - self.embedding_mean) @ self.components.T / self.scales

    def category_shares(self) -> dict[str, float]:
        total = max(int(self.category_counts.sum()), 1)
        return {c: int(v) / total for c, v in zip(CATEGORIES, self.category_counts, strict=True)}

    # -- storage ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        doc = {"format": REFERENCE_FORMAT, "image_features": list(IMAGE_FEATURES),
               "categories": list(CATEGORIES), **self.meta}
        np.savez_compressed(
            buf, embedding_mean=self.embedding_mean.astype(np.float32),
            components=self.components.astype(np.float32), scales=self.scales.astype(np.float32),
            embeddings_pca=self.embeddings_pca.astype(np.float32),
            image_features=self.image_features.astype(np.float32),
            category_counts=self.category_counts.astype(np.int64),
            meta=np.array(json.dumps(doc, sort_keys=True, default=str)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "reference") -> DriftReference:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            doc = json.loads(str(arrays.pop("meta")))
        except Exception as exc:  # zip, npy and JSON errors come in many types
            raise ReferenceError(f"{source}: not a readable drift reference: "
                                 f"{type(exc).__name__}: {exc}") from None
        if doc.get("format") != REFERENCE_FORMAT:
            raise ReferenceError(f"{source}: format {doc.get('format')!r}, expected "
                                 f"{REFERENCE_FORMAT!r}")
        if doc.get("image_features") != list(IMAGE_FEATURES) or doc.get("categories") != list(CATEGORIES):
            raise ReferenceError(f"{source}: made with other image features or categories than "
                                 "this code's; rebuild it")
        try:
            ref = cls(embedding_mean=arrays["embedding_mean"].astype(np.float64),
                      components=arrays["components"].astype(np.float64),
                      scales=arrays["scales"].astype(np.float64),
                      embeddings_pca=arrays["embeddings_pca"],
                      image_features=arrays["image_features"],
                      category_counts=arrays["category_counts"],
                      meta={k: v for k, v in doc.items()
                            if k not in ("format", "image_features", "categories")})
        except KeyError as exc:
            raise ReferenceError(f"{source}: missing array {exc}") from None
        k, d = ref.components.shape
        n = ref.embeddings_pca.shape[0]
        if (ref.embedding_mean.shape != (d,) or ref.scales.shape != (k,)
                or ref.embeddings_pca.shape != (n, k)
                or ref.image_features.shape != (n, N_IMAGE_FEATURES)
                or ref.category_counts.shape != (len(CATEGORIES),) or n < MIN_REFERENCE):
            raise ReferenceError(f"{source}: arrays of inconsistent shapes")
        return ref

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DriftReference:
        path = Path(path)
        if not path.is_file():
            raise ReferenceError(f"{path}: no such file")
        return cls.from_bytes(path.read_bytes(), source=str(path))


# -- from a model and images -------------------------------------------------------------------
def served_categories(bundle: ModelBundle, out: ModelOutputs) -> list[str]:
    """Each image's category as serving would show it (PNG: the model decides the scope;
    flagged or undecided -> out of scope)."""
    from mlcore.ml.evaluation.runner import scoped_probabilities

    probs, decided = scoped_probabilities(bundle, out)
    if bundle.ood is not None:
        flags, _, _ = bundle.ood.flag(out.embeddings, out.descriptors, out.input_std)
    else:
        flags = out.input_std < 2.0 / 255.0
    keys = bundle.class_keys
    return [OUT_OF_SCOPE if (flags[i] or not decided[i]) else keys[int(np.argmax(probs[i]))]
            for i in range(len(probs))]


def outputs_with_stats(bundle: ModelBundle, images: Sequence[np.ndarray], *,
                       model: nn.Module | None = None, chunk: int = 64
                       ) -> tuple[ModelOutputs, np.ndarray]:
    """Model outputs (inference preprocessing) and ``(n, 20)`` image features of ``images``."""
    from mlcore.ml.drift.features import image_features, raw_image_stats
    from mlcore.ml.evaluation.inference import ModelOutputs, run_model
    from mlcore.ml.transforms import preprocess_batch

    if len(images) == 0:
        raise ReferenceError("no images")
    model = model if model is not None else bundle.build()
    cfg = bundle.preprocess
    parts, raw = [], []
    for i in range(0, len(images), chunk):
        batch = list(images[i:i + chunk])
        raw.extend(raw_image_stats(im) for im in batch)
        parts.append(run_model(model, preprocess_batch(batch, cfg), mean=cfg.mean, std=cfg.std,
                               batch_size=chunk))
    out = ModelOutputs.concat(parts)
    return out, image_features(np.array(raw), out.descriptors)


def reference_from_store(bundle: ModelBundle, store: object, split: str = "val", *,
                         model: nn.Module | None = None,
                         projection_embeddings: np.ndarray | None = None,
                         projection_split: str | None = "train",
                         meta: dict[str, Any] | None = None) -> DriftReference:
    """The reference of ``bundle`` on ``split`` of a dataset store: its in-scope images
    (every image of the split; those the model flags count as ``out_of_scope``). The
    embedding PCA is fitted on ``projection_embeddings`` when given (training passes its
    train outputs), else on ``projection_split`` of the store when it has enough images,
    else on the reference itself (see :meth:`DriftReference.fit`)."""
    rows = list(store.rows(split))
    if len(rows) < MIN_REFERENCE:
        raise ReferenceError(f"split {split!r} of {store!r} has {len(rows)} images; a reference "
                             f"needs at least {MIN_REFERENCE}")
    model = model if model is not None else bundle.build()
    images = [store.read_image(r) for r in rows]
    out, feats = outputs_with_stats(bundle, images, model=model)
    if projection_embeddings is None and projection_split and projection_split != split \
            and len(store.rows(projection_split)) >= MIN_REFERENCE:
        from mlcore.ml.evaluation.runner import bundle_outputs

        projection_embeddings = bundle_outputs(bundle, store, projection_split, model=model)[0].embeddings
    info = {"split": split, "images": len(rows), "model_name": bundle.model_name,
            "manifest_hash": getattr(store, "manifest_hash", lambda: "")(), **(meta or {})}
    return DriftReference.fit(embeddings=out.embeddings, image_features=feats,
                              categories=served_categories(bundle, out),
                              projection_embeddings=projection_embeddings, meta=info)
