"""Numeric precision and accelerator choice for training ("auto" means measured, not assumed).

On CUDA, bf16 autocast is the standard fast path. On CPU it depends on the chip: with
AMX/AVX512-BF16 it is faster, without (e.g. AVX2-only EPYC/Xeon) it is emulated and several
times slower. So "auto" on CPU times a matmul-heavy block both ways once per process.
"""

from __future__ import annotations

import functools
import time

import torch
from torch import nn

_PROBE_TOKENS, _PROBE_DIM = 128, 384


def _timed(block: nn.Module, x: torch.Tensor, *, bf16: bool) -> float:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        t0 = time.perf_counter()
        block(x)
        return time.perf_counter() - t0


@functools.cache
def _cpu_bf16_faster(rounds: int = 15) -> bool:
    """True if bf16 autocast runs a transformer-MLP-sized forward >= 20 % faster than fp32.

    Measured on ONE thread: the bf16/fp32 ratio is a property of the instruction set
    (AVX512-BF16/AMX or emulation) and single-threaded timing is stable on a loaded machine,
    where multi-threaded kernels stall on each other (ratios swung 0.15-2.1 in testing, vs
    0.54-0.58 single-threaded). The two are timed round-robin and compared by their fastest
    run (other processes only ever add time). Cached per process; ~0.2 s.
    """
    gen = torch.Generator().manual_seed(0)
    block = nn.Sequential(nn.Linear(_PROBE_DIM, 4 * _PROBE_DIM), nn.GELU(),
                          nn.Linear(4 * _PROBE_DIM, _PROBE_DIM))
    x = torch.randn(_PROBE_TOKENS, _PROBE_DIM, generator=gen)
    best = {False: float("inf"), True: float("inf")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for bf16 in (False, True):  # warm-up: kernel selection, weight casts
            _timed(block, x, bf16=bf16)
        for _ in range(rounds):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], _timed(block, x, bf16=bf16))
    finally:
        torch.set_num_threads(threads)
    return best[True] < 0.8 * best[False]


def resolve_accelerator(devices: int | str = "auto") -> str:
    """"gpu" when CUDA is usable, else "cpu"."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning precision string for ``precision`` ("auto" or any Lightning value)."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if _cpu_bf16_faster() else "32-true"
