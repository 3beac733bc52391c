"""ClassifierSystem: the LightningModule around an injected backbone (Lightning style guide).

The system owns the loss (class-weighted cross-entropy for the imbalance), the optimiser
(AdamW, no weight decay on norms/biases/embeddings), the schedule (linear warm-up then cosine)
and the metrics. ``val_macro_f1`` -- mean F1 over the classes with at least ``monitor_min_support`` val images
(default 10; see ``macro_f1_present``) -- is what the checkpoint callback monitors: accuracy
would reward a model that ignores rare urgent classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassStatScores

from mlcore.ml.classes import CLASS_KEYS


def macro_f1_present(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, *,
                     min_support: int = 1) -> torch.Tensor:
    """Mean F1 over classes with at least ``min_support`` val images (all classes with any
    support when none has that many); 0 when no class has support.

    Why a minimum: with one val image a class's F1 is 0 or 1, and a single flip moves a 9-class
    macro-F1 by 0.11 -- more than the real progress on the classes with hundreds of images. The
    checkpoint monitor would pick epochs by that noise (seen on real-cxr: 1 TB and 1-2 OCT val
    images next to ~60 per CXR class). Test-set reports still cover every class present.
    """
    support = tp + fn
    present = support >= max(1, min_support)
    if not bool(present.any()):
        present = support > 0
    denom = (2 * tp + fp + fn).clamp_min(1)
    f1 = 2 * tp / denom
    if not bool(present.any()):
        return torch.zeros((), dtype=torch.float32, device=tp.device)
    return f1[present].float().mean()


def warmup_cosine(step: int, *, warmup: int, total: int, floor: float = 0.01) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup`` steps, then cosine 1 -> ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def focal_loss(logits: torch.Tensor, y: torch.Tensor, *, gamma: float, weight: torch.Tensor | None = None,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``, so
    images the model already gets right with confidence stop pulling it towards 0/1. Used for
    calibration (Mukhoti et al. 2020: lower ECE after temperature scaling than cross-entropy).
    Weighted and averaged like ``F.cross_entropy`` (divided by the summed weights of the
    targets); ``gamma=0`` is cross-entropy."""
    ce = F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    p_true = F.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    w = torch.ones_like(ce) if weight is None else weight[y]
    return (w * (1.0 - p_true).clamp_min(0).pow(gamma) * ce).sum() / w.sum().clamp_min(1e-12)


class ClassifierSystem(L.LightningModule):
    def __init__(
        self,
        *,
        backbone: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
        warmup_steps: int | None = None,
        max_epochs: int = 10,
        class_weights: torch.Tensor | Sequence[float] | None = None,
        class_keys: Sequence[str] = CLASS_KEYS,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        focal_gamma: float = 0.0,
        monitor_min_support: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "class_weights"])
        self.backbone = backbone
        self.class_keys = tuple(class_keys)
        n = len(self.class_keys)
        w = torch.ones(n) if class_weights is None else torch.as_tensor(class_weights).float()
        if w.shape != (n,):
            raise ValueError(f"class_weights must have {n} entries, got {tuple(w.shape)}")
        self.register_buffer("class_weights", w, persistent=False)
        self.val_stats = MulticlassStatScores(num_classes=n, average=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b 1 S S) -> (b classes)
        return self.backbone(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma = float(self.hparams.focal_gamma)
        if gamma <= 0:
            return F.cross_entropy(logits.float(), y, weight=self.class_weights,
                                   label_smoothing=self.hparams.label_smoothing)
        return focal_loss(logits.float(), y, gamma=gamma, weight=self.class_weights,
                          label_smoothing=self.hparams.label_smoothing)

    def _mixup(self, x: torch.Tensor, y: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Mixup (Zhang et al. 2018): each image blended with another of the batch by a weight
        drawn from Beta(alpha, alpha), the loss blended the same way. It trains the model to be
        unsure between two pictures' labels in proportion, which tempers its confidence where
        classes overlap (Thulasidasan et al. 2019). Draws come from torch's seeded generator, so
        a run repeats. Returns the input, both label sets and the first one's weight."""
        alpha = float(self.hparams.mixup_alpha)
        if alpha <= 0 or x.shape[0] < 2:
            return x, y, y, 1.0
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        x, y_a, y_b, lam = self._mixup(x, y)
        logits = self(x)
        loss = self._loss(logits, y_a)
        if lam < 1.0:
            loss = lam * loss + (1.0 - lam) * self._loss(logits, y_b)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=y.shape[0])
        self.log("train_acc", acc, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=y.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        # Unweighted loss on val: comparable across runs whatever the train class mix.
        loss = F.cross_entropy(logits.float(), y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("val_loss", loss, on_epoch=True, sync_dist=True, batch_size=y.shape[0])
        self.log("val_acc", acc, on_epoch=True, sync_dist=True, batch_size=y.shape[0])
        self.val_stats.update(logits.float(), y)

    def on_validation_epoch_end(self) -> None:
        stats = self.val_stats.compute()  # (classes, 5): tp fp tn fn support; DDP-synced
        tp, fp, fn = stats[:, 0], stats[:, 1], stats[:, 3]
        # Already identical on every rank (the stat scores were synced); sync_dist=True only
        # averages equal numbers and keeps Lightning from warning about epoch-level logging.
        f1 = macro_f1_present(tp, fp, fn, min_support=self.hparams.monitor_min_support)
        self.log("val_macro_f1", f1, sync_dist=True)
        self.val_stats.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, p in self.backbone.named_parameters():
            if not p.requires_grad:
                continue
            flat = p.ndim <= 1 or name.endswith(("pos_embedding", "cls_token"))
            (no_decay if flat else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if self.hparams.warmup_steps is not None:
            warmup = int(self.hparams.warmup_steps)
        else:
            per_epoch = total / max(1, self.hparams.max_epochs)
            warmup = round(self.hparams.warmup_epochs * per_epoch)
        warmup = min(warmup, max(0, total - 1))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup=warmup, total=total)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
