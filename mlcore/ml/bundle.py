"""ModelBundle: everything needed to turn pixels into a calibrated, OOD-aware prediction.

A bundle is a plain directory, so it can be logged to MLflow as an artifact, copied to a bare
GPU box or a Ray worker, and loaded without MLflow or Lightning:

    bundle.json   model name + overrides, class keys, preprocessing, temperature,
                  OOD scalars, training metadata
    weights.pt    ``torch.save(state_dict)`` (loaded with ``weights_only=True``)
    ood.npz       OOD means/precisions (plain arrays, ``allow_pickle=False``)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.evaluation.ood import OODDetector
from mlcore.ml.transforms import PreprocessConfig

BUNDLE_FORMAT = 1
BUNDLE_JSON = "bundle.json"
WEIGHTS = "weights.pt"
OOD_NPZ = "ood.npz"


@dataclass(slots=True)
class ModelBundle:
    model_name: str
    state_dict: dict[str, torch.Tensor]
    preprocess: PreprocessConfig
    model_overrides: dict[str, Any] = field(default_factory=dict)
    class_keys: tuple[str, ...] = CLASS_KEYS
    temperature: float = 1.0
    ood: OODDetector | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        """Write the bundle into ``directory`` (created if missing); returns the path."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()}
        torch.save(state, path / WEIGHTS)
        if self.ood is not None:
            np.savez(path / OOD_NPZ, **self.ood.arrays())
        doc = {
            "format": BUNDLE_FORMAT,
            "model_name": self.model_name,
            "model_overrides": self.model_overrides,
            "class_keys": list(self.class_keys),
            "preprocess": self.preprocess.to_dict(),
            "temperature": float(self.temperature),
            "ood": None if self.ood is None else self.ood.meta(),
            "metadata": self.metadata,
        }
        (path / BUNDLE_JSON).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        path = Path(directory)
        meta_file = path / BUNDLE_JSON
        if not meta_file.is_file() or not (path / WEIGHTS).is_file():
            raise FileNotFoundError(
                f"{path} is not a model bundle: expected {BUNDLE_JSON} and {WEIGHTS} in it"
            )
        doc = json.loads(meta_file.read_text())
        if doc.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"unsupported bundle format {doc.get('format')!r}; "
                             f"this code reads format {BUNDLE_FORMAT}")
        ood = None
        if doc.get("ood") is not None:
            with np.load(path / OOD_NPZ, allow_pickle=False) as npz:
                ood = OODDetector.from_parts(doc["ood"], {k: npz[k] for k in npz.files})
        return cls(
            model_name=doc["model_name"],
            model_overrides=dict(doc.get("model_overrides") or {}),
            state_dict=torch.load(path / WEIGHTS, map_location="cpu", weights_only=True),
            class_keys=tuple(doc["class_keys"]),
            preprocess=PreprocessConfig.from_dict(doc["preprocess"]),
            temperature=float(doc.get("temperature", 1.0)),
            ood=ood,
            metadata=dict(doc.get("metadata") or {}),
        )

    @property
    def image_size(self) -> int:
        return int(self.preprocess.image_size)

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network with the bundle's weights, in eval mode, on ``device``."""
        from mlcore.ml.models import build_model

        model = build_model(self.model_name, **self.model_overrides)
        model.load_state_dict(self.state_dict, strict=True)
        return model.to(device).eval()
