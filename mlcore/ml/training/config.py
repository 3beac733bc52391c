"""TrainConfig / TrainResult: the whole description of a training job, JSON-friendly, so a
Celery task, a CLI and a Ray worker can all pass it around as a dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from mlcore.ml.models import DEFAULT_MODEL

# Same values as mlcore.ml.tracking.DEFAULT_* (not imported: that would import MLflow).
DEFAULT_EXPERIMENT = "radviewer"
DEFAULT_REGISTERED_MODEL = "radviewer-triage"


@dataclass
class TrainConfig:
    store_uri: str
    tracking_uri: str
    model_name: str = DEFAULT_MODEL
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    seed: int = 42
    precision: str = "auto"
    devices: int | str = "auto"
    backend: Literal["local", "ray"] = "local"
    num_workers_ray: int = 2
    ray_use_gpu: bool = False
    registered_model_name: str = DEFAULT_REGISTERED_MODEL
    experiment: str = DEFAULT_EXPERIMENT
    register: bool = True
    alias: str | None = None
    progress: bool = True
    max_train_batches: int | None = None
    include_feedback: bool = False
    # Not in the list, all optional:
    augment: bool = True
    num_workers: int = 0  # DataLoader workers per process
    max_time_s: float | None = None  # wall-clock budget for fit (Lightning max_time)
    output_dir: str | None = None  # where the bundle is written; default a temp dir
    run_name: str | None = None
    log_system_metrics: bool = True
    label_smoothing: float = 0.0
    gradient_clip_val: float | None = 1.0  # global-norm clipping; ViTs from scratch spike
    class_weighting: Literal["inverse", "sqrt_inverse", "none"] = "inverse"
    # Classes with fewer val images than this are left out of the checkpoint monitor
    # (val_macro_f1): their F1 is too noisy to choose an epoch by. Reports keep every class.
    monitor_min_support: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in ("local", "ray"):
            problems.append(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                            f"{self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            problems.append("lr must be > 0 and weight_decay, warmup_epochs >= 0")
        if self.monitor_min_support < 1:
            problems.append(f"monitor_min_support must be >= 1, got {self.monitor_min_support}")
        if self.backend == "ray" and self.num_workers_ray < 1:
            problems.append(f"num_workers_ray must be >= 1, got {self.num_workers_ray}")
        if self.max_train_batches is not None and self.max_train_batches < 1:
            problems.append(f"max_train_batches must be None or >= 1, got "
                            f"{self.max_train_batches}")
        if self.alias is not None and (self.alias == "latest" or self.alias.isdigit()):
            problems.append(f"alias {self.alias!r} is not allowed (use production, canary, "
                            "candidate, ...)")
        if self.alias is not None and not self.register:
            problems.append("alias needs register=True")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; accepted: {sorted(names)}")
        return cls(**data)


@dataclass
class TrainResult:
    run_id: str
    model_version: str | None
    metrics: dict[str, float]
    bundle_dir: str | None
