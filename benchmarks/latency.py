"""CPU latency of every registered model, of the explanations, and of the runtimes.

    python benchmarks/latency.py [--repeats N] [--quick] [--models a,b] [--default NAME]
                                 [--image-size PX]

``--image-size`` builds every model at that input size (the ratio against DenseNet-121 at
the deployed size, and at 224 px for reference: docs/benchmarks.md).

Prints markdown tables (docs/benchmarks.md is made from them). Everything runs in one
process, and comparisons are timed round-robin (see ``_common.time_interleaved``), so ratios
against DenseNet-121 compare like with like even on a shared, drifting machine.
Random weights: latency does not depend on what the weights are.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

try:  # run as `python -m benchmarks.latency` or as `python benchmarks/latency.py`
    from benchmarks._common import machine_description, markdown_table, time_fn, time_interleaved
except ImportError:
    from _common import (  # type: ignore[no-redef]
        machine_description,
        markdown_table,
        time_fn,
        time_interleaved,
    )

from mlcore.ml.explain import grad_cam, integrated_gradients, predict_with_rollout
from mlcore.ml.models import DEFAULT_MODEL, build_model, list_models

BASELINE = "densenet121"


def _input(model: torch.nn.Module, batch: int) -> torch.Tensor:
    cfg = model.default_cfg
    return torch.randn(batch, cfg["in_chans"], cfg["img_size"], cfg["img_size"])


def _gflops(model: torch.nn.Module) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(_input(model, 1))
    return counter.get_total_flops() / 1e9


def _tokens(model: torch.nn.Module) -> str:
    grid = getattr(model, "grid_size", None)
    return f"{grid[0]}x{grid[1]}" if grid else "-"


def _forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def _build(name: str, image_size: int | None) -> torch.nn.Module:
    return build_model(name, **({"img_size": image_size} if image_size else {})).eval()


def model_table(names: list[str], repeats: int, big_batch: int, image_size: int | None = None) -> str:
    models = {n: _build(n, image_size) for n in names}
    b1 = time_interleaved({n: _forward(m, _input(m, 1)) for n, m in models.items()},
                          repeats=repeats)
    base = b1[BASELINE].median_ms
    rows = []
    for name, model in models.items():
        tb = time_fn(_forward(model, _input(model, big_batch)), repeats=max(3, repeats // 4),
                     warmup=1)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append([name, model.default_cfg["img_size"], _tokens(model), f"{params:.2f}",
                     f"{_gflops(model):.2f}", f"{b1[name].median_ms:.1f}",
                     f"{b1[name].p95_ms:.1f}", f"{b1[name].min_ms:.1f}", f"{tb.median_ms:.0f}",
                     f"{big_batch * 1e3 / tb.median_ms:.0f}",
                     f"{b1[name].median_ms / base:.2f}",
                     f"{b1[name].min_ms / b1[BASELINE].min_ms:.2f}"])
    header = ["model", "px", "tokens", "params (M)", "GFLOPs", "b1 median ms", "b1 p95 ms",
              "b1 min ms", f"b{big_batch} median ms", f"b{big_batch} img/s",
              "b1 median / DenseNet", "b1 min / DenseNet"]
    return markdown_table(header, rows)


def explanation_table(name: str, repeats: int) -> str:
    model = build_model(name).eval()
    x = _input(model, 1)
    cheap = {"predict": _forward(model, x)}
    if getattr(model, "is_vit", False):
        cheap["predict_with_rollout"] = lambda: predict_with_rollout(model, x)
    timings = time_interleaved(cheap, repeats=repeats)
    timings["grad_cam"] = time_fn(lambda: grad_cam(model, x), repeats=max(3, repeats // 2),
                                  warmup=1)
    timings["integrated_gradients (32 steps)"] = time_fn(
        lambda: integrated_gradients(model, x, n_steps=32), repeats=max(3, repeats // 4),
        warmup=1)
    base = timings["predict"].median_ms
    rows = [[label, f"{t.median_ms:.1f}", f"{t.p95_ms:.1f}", f"{t.min_ms:.1f}",
             f"{t.median_ms / base:.2f}", f"{(t.median_ms - base) / base:+.2f}"]
            for label, t in timings.items()]
    return markdown_table(["method (batch 1)", "median ms", "p95 ms", "min ms", "x predict",
                           "overhead / predict (median)"], rows)


def _onnx_session(model: torch.nn.Module, x: torch.Tensor, path: str):  # -> InferenceSession
    import onnxruntime as ort

    kwargs = {"input_names": ["x"], "output_names": ["logits"]}
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)

        torch.onnx.export(model, (x,), path, dynamo=True, **kwargs)
    except ImportError:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, **kwargs)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def runtime_table(name: str, repeats: int) -> str:
    model = build_model(name).eval()
    x = _input(model, 1)
    feed = {"x": x.numpy()}

    def bf16() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    with warnings.catch_warnings(), torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        traced = torch.jit.optimize_for_inference(torch.jit.trace(model, (x,)))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            session = _onnx_session(model, x, os.path.join(tmp, "model.onnx"))
    runs: dict[str, Callable[[], object]] = {
        "eager fp32": _forward(model, x),
        "eager bf16 autocast": bf16,
        "TorchScript (trace + optimize_for_inference)": lambda: traced(x),
        "ONNX Runtime (CPU EP)": lambda: session.run(None, feed)[0],
    }
    timings = time_interleaved(runs, repeats=repeats)
    ref = runs["eager fp32"]().float()  # type: ignore[union-attr]
    base = timings["eager fp32"].median_ms
    rows = []
    for label, fn in runs.items():
        out = torch.as_tensor(np.asarray(fn())) if label.startswith("ONNX") else fn()
        diff = float((out.float() - ref).abs().max())  # type: ignore[union-attr]
        t = timings[label]
        rows.append([label, f"{t.median_ms:.1f}", f"{t.p95_ms:.1f}", f"{t.min_ms:.1f}",
                     f"{base / t.median_ms:.2f}", f"{diff:.1e}"])
    return markdown_table(["runtime (batch 1)", "median ms", "p95 ms", "min ms",
                           "speed-up vs eager (median)", "max abs logit diff"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs at batch 1")
    parser.add_argument("--quick", action="store_true", help="5 repeats, batch 8")
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--default", default=DEFAULT_MODEL,
                        help="variant for the explanation and runtime tables")
    parser.add_argument("--image-size", type=int, default=None,
                        help="build every model at this input size (default: each variant's own)")
    parser.add_argument("--models-only", action="store_true", help="only the model table")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    big_batch = 8 if args.quick else 32
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    names = [n for n in args.models.split(",") if n] or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {', '.join(list_models())}")
    if BASELINE not in names:
        names.append(BASELINE)

    print(f"Machine: {machine_description()}\n")
    size = f", all at {args.image_size} px" if args.image_size else ""
    print(f"### Models (random weights, fp32 eager, inference_mode, {repeats} runs at b1{size})\n")
    print(model_table(names, repeats, big_batch, args.image_size), "\n")
    if args.models_only:
        return
    print(f"### Explanation cost ({args.default})\n")
    print(explanation_table(args.default, repeats), "\n")
    print(f"### Runtimes ({args.default})\n")
    print(runtime_table(args.default, repeats))


if __name__ == "__main__":
    main()
