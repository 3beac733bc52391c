"""Score a list of images the way serving does, for an evaluation's per-image cache.

Same preprocessing path as ``runner.bundle_outputs`` and the predictor; the scope is decided
by the model (as for a PNG upload), probabilities are restricted to it, and the raw
(temperature 1) probabilities are restricted to the *same* scope so a reliability diagram
before/after temperature scaling compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from mlcore.ml.evaluation.calibration import softmax_with_temperature
from mlcore.ml.evaluation.inference import ModelOutputs, run_model
from mlcore.ml.evaluation.ood import MIN_INPUT_STD
from mlcore.ml.scope import apply_scope, scope_mass
from mlcore.ml.transforms import preprocess_batch

if TYPE_CHECKING:
    from mlcore.ml.bundle import ModelBundle


@dataclass(slots=True)
class ScoredImages:
    probabilities: np.ndarray  # (n, C) calibrated, scoped
    raw_probabilities: np.ndarray  # (n, C) temperature 1, same scope
    scopes: list[str]  # "cxr" | "oct" | "" (undecided)
    out_of_scope: np.ndarray  # (n,) bool: the detector flags it, or the scope is undecided


def score_images(bundle: ModelBundle, images: Sequence[np.ndarray], *, model: nn.Module | None = None,
                 chunk: int = 64) -> ScoredImages:
    if len(images) == 0:
        raise ValueError("score_images needs at least one image")
    model = model if model is not None else bundle.build()
    cfg = bundle.preprocess
    parts = []
    for i in range(0, len(images), chunk):
        x = preprocess_batch(list(images[i:i + chunk]), cfg)
        parts.append(run_model(model, x, mean=cfg.mean, std=cfg.std, batch_size=chunk))
    out = ModelOutputs.concat(parts)
    keys = bundle.class_keys
    calibrated = softmax_with_temperature(out.logits, bundle.temperature)
    scopes = [bundle.scope_rule.decide(m)[0] for m in scope_mass(calibrated, keys)]
    probs, decided = apply_scope(calibrated, keys, bundle.scope_rule, hints=scopes)
    raw, _ = apply_scope(softmax_with_temperature(out.logits, 1.0), keys, bundle.scope_rule, hints=scopes)
    if bundle.ood is not None:
        flags, _, _ = bundle.ood.flag(out.embeddings, out.descriptors, out.input_std)
    else:  # a bundle without a detector still refuses blank images, as the predictor does
        flags = out.input_std < MIN_INPUT_STD
    return ScoredImages(probabilities=probs, raw_probabilities=raw, scopes=[s or "" for s in scopes],
                        out_of_scope=np.asarray(flags, dtype=bool) | ~decided)
