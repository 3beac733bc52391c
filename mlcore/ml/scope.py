"""Scope: is this a chest X-ray or a retinal OCT? Decided before any class is shown.

A chest film must never get a retinal diagnosis (nor an OCT B-scan a chest one), so every
prediction is made within one scope and its probabilities are renormalised over that scope's
classes. The scope comes from the DICOM header where it says so (the caller passes it as a
hint: CR/DX of the chest -> ``cxr``, OPT -> ``oct``); otherwise the model decides from its
own calibrated class probabilities: the probability mass on each scope's classes. When
neither scope holds at least ``ScopeRule.threshold`` of the mass, the scope is undecided and
the image is flagged for reading without the AI -- never forced into a class.

The threshold is fitted on the validation split (``ScopeRule.fit``): the smallest value, not
below ``MIN_THRESHOLD``, at which at most ``max_error`` of the val images that the rule
decides are put in the wrong scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from mlcore.ml.classes import CLASS_BY_KEY

Scope = Literal["cxr", "oct"]
SCOPES: tuple[Scope, ...] = ("cxr", "oct")
SCOPE_NAMES: dict[str, str] = {"cxr": "chest X-ray", "oct": "retinal OCT"}
MIN_THRESHOLD = 0.8
_GRID = np.round(np.arange(MIN_THRESHOLD, 0.9951, 0.005), 4)


def scope_of(class_key: str) -> Scope:
    return CLASS_BY_KEY[class_key].modality


def scope_mass(probs: np.ndarray, class_keys: Sequence[str]) -> np.ndarray:
    """(n, C) class probabilities -> (n, 2) probability mass on (cxr, oct)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    cols = np.array([[scope_of(k) == s for k in class_keys] for s in SCOPES], dtype=np.float64)
    return probs @ cols.T


def restrict(probabilities: Mapping[str, float], scope: Scope) -> dict[str, float]:
    """The probabilities of ``scope``'s classes, renormalised to sum to 1."""
    kept = {k: float(p) for k, p in probabilities.items() if scope_of(k) == scope}
    total = sum(kept.values())
    if not kept:
        raise ValueError(f"no class of scope {scope!r} among {sorted(probabilities)}")
    if total <= 0:
        return {k: 1.0 / len(kept) for k in kept}
    return {k: p / total for k, p in kept.items()}


@dataclass(frozen=True, slots=True)
class ScopeRule:
    threshold: float = MIN_THRESHOLD
    val_images: int = 0
    val_decided: float | None = None  # share of val images the rule decides
    val_error: float | None = None  # share of decided val images put in the wrong scope

    def decide(self, mass: np.ndarray) -> tuple[Scope | None, float]:
        """``(scope or None when undecided, mass on the leading scope)`` for one image."""
        mass = np.asarray(mass, dtype=np.float64)
        lead = int(mass.argmax())
        share = float(mass[lead])
        return (SCOPES[lead] if share >= self.threshold else None), share

    @classmethod
    def fit(cls, probs: np.ndarray, labels: np.ndarray, class_keys: Sequence[str], *,
            max_error: float = 0.01) -> ScopeRule:
        """Smallest grid threshold >= MIN_THRESHOLD whose decided val images are at most
        ``max_error`` wrong (the largest grid value if none is)."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            return cls()
        mass = scope_mass(probs, class_keys)
        truth = np.array([SCOPES.index(scope_of(class_keys[i])) for i in labels])
        lead, share = mass.argmax(axis=1), mass.max(axis=1)
        chosen = None
        for t in _GRID:
            decided = share >= t
            err = float((lead[decided] != truth[decided]).mean()) if decided.any() else 0.0
            chosen = (float(t), float(decided.mean()), err)
            if err <= max_error:
                break
        assert chosen is not None
        return cls(threshold=chosen[0], val_images=int(labels.size), val_decided=chosen[1],
                   val_error=chosen[2])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScopeRule:
        if not data:
            return cls()
        return cls(threshold=float(data.get("threshold", MIN_THRESHOLD)),
                   val_images=int(data.get("val_images", 0)),
                   val_decided=data.get("val_decided"), val_error=data.get("val_error"))


def apply_scope(probs: np.ndarray, class_keys: Sequence[str], rule: ScopeRule,
                hints: Sequence[str | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What serving does, for a whole split: each row's probabilities restricted to its
    scope (the hint where given, else the rule's decision) and renormalised. Returns the
    scoped (n, C) probabilities and a mask of the rows whose scope was decided (undecided
    rows keep their nine probabilities; serving shows them no class at all)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    mass = scope_mass(probs, class_keys)
    member = np.array([[scope_of(k) == s for k in class_keys] for s in SCOPES])
    out = probs.copy()
    decided = np.zeros(len(probs), dtype=bool)
    for i in range(len(probs)):
        hint = hints[i] if hints is not None else None
        scope = hint if hint in SCOPES else rule.decide(mass[i])[0]
        if scope is None:
            continue
        keep = member[SCOPES.index(scope)]
        total = probs[i, keep].sum()
        out[i] = np.where(keep, probs[i] / total if total > 0 else keep / keep.sum(), 0.0)
        decided[i] = True
    return out, decided
