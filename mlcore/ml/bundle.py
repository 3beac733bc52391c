"""ModelBundle: everything needed to turn pixels into a calibrated, OOD-aware prediction.

A bundle is a plain directory, so it can be logged to MLflow as an artifact, copied to a bare
GPU box or a Ray worker, and loaded without MLflow or Lightning:

    bundle.json   model name + overrides, class keys, preprocessing, temperature,
                  OOD scalars, scope rule, training metadata
    weights.pt    ``torch.save(state_dict)`` (loaded with ``weights_only=True``)
    ood.npz       OOD means/precisions (plain arrays, ``allow_pickle=False``)

The same content also travels as ONE file (:meth:`ModelBundle.save_file` /
:meth:`ModelBundle.load_file`): the starter model shipped under ``mlcore/starter/``. Its
weights are stored in float16 (half the size; the network runs in float32 after loading) and
it is read with ``weights_only=True`` (tensors, numbers and strings only: no code runs on
load). A truncated, corrupt or mismatched file raises :class:`BundleFileError` naming the
file and what is wrong.
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
from mlcore.ml.models import build_model
from mlcore.ml.scope import ScopeRule
from mlcore.ml.transforms import PreprocessConfig

BUNDLE_FORMAT = 1
BUNDLE_JSON = "bundle.json"
WEIGHTS = "weights.pt"
OOD_NPZ = "ood.npz"
FILE_FORMAT = "radviewer-bundle-file/1"


class BundleFileError(ValueError):
    """A single-file bundle that cannot be used; the message names the file and the fault."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


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
    scope_rule: ScopeRule = field(default_factory=ScopeRule)

    def save(self, directory: str | Path) -> Path:
        """Write the bundle into ``directory`` (created if missing); returns the path."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()}
        torch.save(state, path / WEIGHTS)
        if self.ood is not None:
            np.savez(path / OOD_NPZ, **self.ood.arrays())
        (path / BUNDLE_JSON).write_text(json.dumps(self._doc(), indent=2, sort_keys=True,
                                                   default=str))
        return path

    def _doc(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "model_name": self.model_name,
            "model_overrides": self.model_overrides,
            "class_keys": list(self.class_keys),
            "preprocess": self.preprocess.to_dict(),
            "temperature": float(self.temperature),
            "ood": None if self.ood is None else self.ood.meta(),
            "scope": self.scope_rule.to_dict(),
            "metadata": self.metadata,
        }

    @classmethod
    def _from_doc(cls, doc: dict[str, Any], state_dict: dict[str, torch.Tensor],
                  ood_arrays: dict[str, np.ndarray] | None) -> ModelBundle:
        if doc.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"unsupported bundle format {doc.get('format')!r}; "
                             f"this code reads format {BUNDLE_FORMAT}")
        ood = None
        if doc.get("ood") is not None:
            if ood_arrays is None:
                raise ValueError("the bundle names an out-of-scope detector but holds no arrays")
            ood = OODDetector.from_parts(doc["ood"], ood_arrays)
        return cls(
            model_name=doc["model_name"],
            model_overrides=dict(doc.get("model_overrides") or {}),
            state_dict=state_dict,
            class_keys=tuple(doc["class_keys"]),
            preprocess=PreprocessConfig.from_dict(doc["preprocess"]),
            temperature=float(doc.get("temperature", 1.0)),
            ood=ood,
            metadata=dict(doc.get("metadata") or {}),
            scope_rule=ScopeRule.from_dict(doc.get("scope")),
        )

    def save_file(self, path: str | Path) -> Path:
        """Everything in one ``torch.save`` file, weights as float16 (see module docstring)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FILE_FORMAT,
            "doc": json.dumps(self._doc(), sort_keys=True, default=str),
            "state_dict": {k: (v.detach().cpu().half() if v.is_floating_point() else
                               v.detach().cpu()).contiguous()
                           for k, v in self.state_dict.items()},
            "ood": {} if self.ood is None else {k: torch.from_numpy(np.ascontiguousarray(v))
                                                 for k, v in self.ood.arrays().items()},
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load_file(cls, path: str | Path) -> ModelBundle:
        """Read and fully check a :meth:`save_file` file: it loads, its classes are this
        code's nine, its variant exists and its weights fit that variant exactly."""
        path = Path(path)
        if not path.is_file():
            raise BundleFileError(path, "no such file")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for truncated/corrupt archives
            raise BundleFileError(path, f"not a readable model file (truncated or corrupt?): "
                                        f"{type(exc).__name__}: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise BundleFileError(path, f"not a RadViewer model file (format {found!r}, "
                                        f"expected {FILE_FORMAT!r})")
        try:
            doc = json.loads(payload["doc"])
            state = {k: v.float() if v.is_floating_point() else v
                     for k, v in payload["state_dict"].items()}
            arrays = {k: v.numpy().astype(np.float64) for k, v in payload["ood"].items()}
            bundle = cls._from_doc(doc, state, arrays or None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleFileError(path, f"malformed model file: {type(exc).__name__}: {exc}"
                                  ) from None
        if tuple(bundle.class_keys) != CLASS_KEYS:
            raise BundleFileError(path, f"its class list {list(bundle.class_keys)} does not "
                                        f"match this version's {list(CLASS_KEYS)}")
        try:
            bundle.build()
        except KeyError as exc:
            raise BundleFileError(path, f"unknown model variant: {exc}") from None
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BundleFileError(path, f"weights do not fit variant {bundle.model_name!r} "
                                        f"with {bundle.model_overrides}: {exc}") from None
        return bundle

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        path = Path(directory)
        meta_file = path / BUNDLE_JSON
        if not meta_file.is_file() or not (path / WEIGHTS).is_file():
            raise FileNotFoundError(
                f"{path} is not a model bundle: expected {BUNDLE_JSON} and {WEIGHTS} in it"
            )
        doc = json.loads(meta_file.read_text())
        arrays = None
        if doc.get("ood") is not None and (path / OOD_NPZ).is_file():
            with np.load(path / OOD_NPZ, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        return cls._from_doc(doc, state, arrays)

    @property
    def image_size(self) -> int:
        return int(self.preprocess.image_size)

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network with the bundle's weights, in eval mode, on ``device``."""
        model = build_model(self.model_name, **self.model_overrides)
        model.load_state_dict(self.state_dict, strict=True)
        return model.to(device).eval()
