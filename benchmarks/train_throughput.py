"""Training throughput (images/s) of a model variant: fp32 vs bf16 autocast.

    python benchmarks/train_throughput.py [--model NAME] [--device cpu|cuda] [--steps N]
                                          [--batch-size B] [--warmup W] [--threads T]

One optimisation step = forward, weighted cross-entropy, backward, AdamW step -- what
``ClassifierSystem`` does per batch, without Lightning's bookkeeping or data loading (the
data module serves cached uint8 tensors, so the model dominates). Random inputs and
weights: throughput does not depend on their values. On CPU "bf16" is
``torch.autocast("cpu", bfloat16)``; on CUDA it is Lightning's "bf16-mixed" equivalent
(``torch.autocast("cuda", bfloat16)``). Precisions are timed round-robin, step by step, so
drift of a shared machine hits both equally. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlcore.ml.models import DEFAULT_MODEL, build_model


def make_step(model: torch.nn.Module, device: torch.device, batch: int, bf16: bool):
    size = int(model.default_cfg["img_size"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen).to(device)
    y = torch.randint(0, 9, (batch,), generator=gen).to(device)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else \
        contextlib.nullcontext

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=0,
                    help="override the variant's img_size (0: its default)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    precisions = {"fp32": False, "bf16": True}
    steps = {}
    for name, bf16 in precisions.items():
        torch.manual_seed(0)
        overrides = {"img_size": args.image_size} if args.image_size else {}
        model = build_model(args.model, **overrides).to(device).train()
        steps[name] = make_step(model, device, args.batch_size, bf16)
    for _ in range(args.warmup):
        for fn in steps.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.steps):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)

    if device.type == "cuda":
        where = torch.cuda.get_device_name(0)
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    size = args.image_size or build_model(args.model).default_cfg["img_size"]
    print(f"### Training throughput: `{args.model}` at {size} px on {args.device} ({where})\n")
    print(f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs visible\n")
    print("| precision | median ms/step | images/s | vs fp32 |")
    print("|---|---:|---:|---:|")
    base = statistics.median(samples["fp32"])
    for name, vals in samples.items():
        med = statistics.median(vals)
        print(f"| {name} | {med * 1e3:.0f} | {args.batch_size / med:.1f} | {base / med:.2f}x |")
    if device.type == "cpu":
        from mlcore.ml.training.precision import _cpu_bf16_faster

        choice = "bf16-mixed" if _cpu_bf16_faster() else "32-true"
        print(f"\nprecision='auto' on this CPU resolves to `{choice}` "
              "(training.precision._cpu_bf16_faster probe)")
    else:
        print("\nprecision='auto' on CUDA resolves to `bf16-mixed`")


if __name__ == "__main__":
    main()
