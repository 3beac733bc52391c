"""Short Lightning training run in bf16-mixed on a GPU: images/s of the real training loop.

    python benchmarks/gpu_lightning_bf16.py [--model NAME] [--per-class N] [--epochs E]
                                           [--batch-size B] [--num-workers W]

Same parts as ``mlcore.ml.training`` (RadDataModule with augmentation, ClassifierSystem with
AdamW + warm-up/cosine) on a synthetic phantom store written to a temp dir, without MLflow,
so it runs on a bare GPU box with only torch, lightning, einops, numpy and Pillow. Throughput
is timed over the epochs after the first (warm-up, cudnn autotuning, data caching). Prints a
markdown table; the figures are synthetic-data throughput, not accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.ml.models import DEFAULT_MODEL, build_model
from mlcore.ml.training.datamodule import RadDataModule
from mlcore.ml.training.system import ClassifierSystem


class Throughput(L.Callback):
    def __init__(self) -> None:
        self.epoch_images: list[int] = []
        self.epoch_seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images = 0
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += int(batch[0].shape[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.epoch_seconds.append(time.perf_counter() - self._t0)
        self.epoch_images.append(self._images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--size", type=int, default=256, help="phantom side in px")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--num-workers", type=int, default=8)
    ap.add_argument("--precision", default="bf16-mixed")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = LocalDatasetStore(Path(tmp) / "store")
        t0 = time.perf_counter()
        make_synthetic_dataset(store, per_class=args.per_class, size=args.size, seed=0)
        data_s = time.perf_counter() - t0
        backbone = build_model(args.model)
        size = int(backbone.default_cfg["img_size"])
        dm = RadDataModule(store, image_size=size, batch_size=args.batch_size, num_workers=args.num_workers)
        dm.setup("fit")
        system = ClassifierSystem(backbone=backbone, lr=1e-3, weight_decay=0.05, warmup_epochs=1,
                                  max_epochs=args.epochs, class_weights=dm.class_weights,
                                  class_keys=dm.class_keys)
        meter = Throughput()
        trainer = L.Trainer(accelerator="auto", devices=1, precision=args.precision, max_epochs=args.epochs,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, callbacks=[meter])
        trainer.fit(system, datamodule=dm)
        val_f1 = trainer.callback_metrics.get("val_macro_f1")

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    steady = list(zip(meter.epoch_images[1:], meter.epoch_seconds[1:], strict=True)) or \
        list(zip(meter.epoch_images, meter.epoch_seconds, strict=True))
    images = sum(n for n, _ in steady)
    seconds = sum(s for _, s in steady)
    print(f"### Lightning training, `{args.model}` at {size} px, {args.precision}, {device}\n")
    print(f"torch {torch.__version__}, lightning {L.__version__}; synthetic store "
          f"{args.per_class}/class written in {data_s:.1f} s; batch {args.batch_size}, "
          f"{args.num_workers} loader workers\n")
    print("| epoch | train images | seconds | images/s |")
    print("|---:|---:|---:|---:|")
    for i, (n, s) in enumerate(zip(meter.epoch_images, meter.epoch_seconds, strict=True)):
        print(f"| {i} | {n} | {s:.2f} | {n / s:.0f} |")
    print(f"\nsteady-state (epochs 1..): **{images / seconds:.0f} images/s**; "
          f"val macro-F1 after {args.epochs} epochs: {float(val_f1) if val_f1 is not None else 'n/a'}")
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
