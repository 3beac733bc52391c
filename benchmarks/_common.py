"""Timing helpers shared by the benchmarks: warm-up, median / p95, machine description.

Why median and p95 rather than mean: on a shared CPU the distribution has a long right tail
(other processes, frequency changes); the median is the typical latency a radiologist sees,
p95 the slow case.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    min_ms: float  # the least-disturbed run: the best estimate on a busy, shared machine
    n: int


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) without numpy."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def time_fn(fn: Callable[[], object], *, repeats: int, warmup: int = 2) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (perf_counter)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return Timing(statistics.median(samples), percentile(samples, 95), min(samples), len(samples))


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int,
                     warmup: int = 2) -> dict[str, Timing]:
    """Time several functions round-robin (one run of each per round).

    On a shared machine the load drifts over a run; interleaving exposes every function to
    the same drift, so their *ratios* stay meaningful even when absolute times move.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {k: Timing(statistics.median(v), percentile(v, 95), min(v), len(v))
            for k, v in samples.items()}


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
