"""TrainConfig / TrainResult: the whole description of a training job, JSON-friendly, so a
Celery task, a CLI and a Ray worker can all pass it around as a dict.

The defaults ARE the real-data recipe (the one the starter model, ``benchmarks/real_cxr.py``
and the console's training jobs share; docs/model-card.md gives its figures): AdamW lr 5e-4,
weight decay 0.05, one warm-up epoch then cosine, gradient-norm clipping at 1.0,
square-root inverse-frequency class weights, geometric + intensity + resolution + noise
augmentation, seed 42, a fixed number of epochs. The image
size is the variant's unless ``image_size`` says otherwise. A caller changes a field only
on purpose (the phantom demo does, and says so).
"""

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
    epochs: int = 40
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    seed: int = 42
    # "auto": bf16-mixed on CUDA; on a CPU bf16 only where a probe measures it faster. A
    # recipe that must reproduce bit for bit names one (the starter model's card does).
    precision: str = "auto"
    devices: int | str = "auto"
    backend: Literal["local", "ray"] = "local"
    num_workers_ray: int = 2
    ray_use_gpu: bool = False
    # A Ray cluster to join ("127.0.0.1:6379", "auto"); empty = a local one in this process
    # tree. With a cluster, checkpoints go to ``ray_storage_path`` (a store every node sees:
    # a shared folder or s3://), and a worker group that loses a node is restarted up to
    # ``ray_max_failures`` times from its last checkpoint (one per epoch).
    ray_address: str = ""
    ray_storage_path: str = ""
    ray_max_failures: int = 0
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
    # Mixup of training images and their labels, Beta(alpha, alpha) weights (0 = off); see
    # ClassifierSystem._mixup.
    mixup_alpha: float = 0.0
    # Focal loss exponent (0 = cross-entropy); see mlcore.ml.training.system.focal_loss.
    focal_gamma: float = 0.0
    gradient_clip_val: float | None = 1.0  # global-norm clipping; ViTs from scratch spike
    # Square root: plain inverse frequency gives real-cxr's 4-image TB class ~100x the weight
    # of a CXR class, which it then memorises.
    class_weighting: Literal["inverse", "sqrt_inverse", "none"] = "sqrt_inverse"
    # Input size; None = the variant's own (``model_overrides["img_size"]`` also works).
    image_size: int | None = None
    # "none" or "equalize": see mlcore.ml.transforms (stored with the model). Not the
    # default: on real-cxr, equalisation took lung-opacity sensitivity from ~0.93 to 0.63-0.73
    # (absolute density is the finding; docs/model-card.md).
    intensity: str = "none"
    # Acquisition-quality augmentation: Gaussian noise std up to this (0 = off) and a
    # resolution loss down by up to this factor (1 = off), each on half the images.
    augment_noise: float = 0.03
    augment_downscale: float = 2.0
    # Share each class's training draws among its sources (0 = off, 1 = equally): see
    # mlcore.ml.training.datamodule.source_balanced_weights.
    source_balance: float = 0.0
    # Exponential moving average of the weights (decay per step; None = off), started at
    # ``ema_start_epoch``: validation, the checkpoint and the final model use the averaged
    # weights once it has started. Started at epoch 0 (its one real-cxr run, vit-h16-128, 0.998,
    # 2026-12-02) the average is still mostly the first epochs' weights after 12 epochs (0.998
    # per step over 53 steps an epoch), and val F1 stayed near chance; docs/benchmarks.md.
    ema_decay: float | None = None
    ema_start_epoch: int = 0
    # Classes with fewer val images than this are left out of the checkpoint monitor
    # (val_macro_f1): their F1 is too noisy to choose an epoch by. Reports keep every class.
    monitor_min_support: int = 10
    # Extra MLflow run tags: lineage the caller knows (the training job, the version in
    # production when the job was asked for: the version page's "parent").
    run_tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in ("local", "ray"):
            problems.append(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                            f"{self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            problems.append("lr must be > 0 and weight_decay, warmup_epochs >= 0")
        if self.image_size is not None and self.image_size < 16:
            problems.append(f"image_size must be None or >= 16, got {self.image_size}")
        if self.intensity not in ("none", "equalize"):
            problems.append(f"intensity must be 'none' or 'equalize', got {self.intensity!r}")
        if self.augment_noise < 0 or self.augment_downscale < 1:
            problems.append("augment_noise must be >= 0 and augment_downscale >= 1")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append(f"ema_decay must be None or in (0, 1), got {self.ema_decay}")
        if not 0 <= self.ema_start_epoch < self.epochs:
            problems.append(f"ema_start_epoch must be in [0, epochs), got {self.ema_start_epoch}")
        if not 0.0 <= self.source_balance <= 1.0:
            problems.append(f"source_balance must be in [0, 1], got {self.source_balance}")
        if not 0.0 <= self.mixup_alpha <= 10.0:
            problems.append(f"mixup_alpha must be in [0, 10] (0 = off), got {self.mixup_alpha}")
        if not 0.0 <= self.focal_gamma <= 10.0:
            problems.append(f"focal_gamma must be in [0, 10] (0 = cross-entropy), got {self.focal_gamma}")
        if self.monitor_min_support < 1:
            problems.append(f"monitor_min_support must be >= 1, got {self.monitor_min_support}")
        if self.backend == "ray" and self.num_workers_ray < 1:
            problems.append(f"num_workers_ray must be >= 1, got {self.num_workers_ray}")
        if self.ray_max_failures < 0:
            problems.append(f"ray_max_failures must be >= 0, got {self.ray_max_failures}")
        if self.backend == "ray" and self.ray_address and not self.ray_storage_path:
            problems.append("a Ray cluster (ray_address) needs ray_storage_path: a folder or s3:// URI "
                            "every node sees, where checkpoints survive a lost node")
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

    @property
    def backbone_overrides(self) -> dict[str, Any]:
        """``model_overrides`` with ``image_size`` folded in (it wins when both are set)."""
        if self.image_size is None:
            return dict(self.model_overrides)
        return {**self.model_overrides, "img_size": int(self.image_size)}

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
    # Stopped on request (``train(should_stop=...)``): nothing calibrated or registered.
    cancelled: bool = False
