"""Resident memory of one inference worker's Predictor (no training needed).

    python benchmarks/predictor_memory.py [--model NAME] [--images N] [--no-explain]

Builds a bundle of the chosen variant with random weights (and an OOD detector fitted on
random inputs, so its arrays are counted too) in a temp dir, then starts a FRESH Python
process that imports the predictor, loads the bundle and predicts N images, printing the
resident set size after each stage and the peak (``ru_maxrss``). A fresh process because
that is what a Celery worker is, and because the parent's imports would blur the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
import psutil

def rss():
    return psutil.Process().memory_info().rss / 2**20

stages = {"python": rss()}
import numpy as np, torch
stages["import torch"] = rss()
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.predictor import Predictor
stages["import predictor"] = rss()
t0 = time.perf_counter()
p = Predictor(ModelBundle.load(sys.argv[1]), version="bench", model_uri="local")
load_s = time.perf_counter() - t0
stages["bundle loaded"] = rss()
n, explain = int(sys.argv[2]), sys.argv[3] == "1"
rng = np.random.default_rng(0)
images = [rng.integers(0, 255, (256, 220), dtype=np.uint8) for _ in range(n)]
lat = []
for img in images:  # one at a time, as the inference task does
    t = time.perf_counter()
    p.predict([img], explain=explain)
    lat.append((time.perf_counter() - t) * 1e3)
stages[f"after {n} predictions"] = rss()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"stages": stages, "peak_mb": peak, "load_s": load_s,
                  "median_ms": float(np.median(lat[1:] or lat)), "threads": torch.get_num_threads()}))
"""


def build_bundle(model_name: str, dest: Path) -> None:
    import torch

    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.evaluation.inference import run_model
    from mlcore.ml.evaluation.ood import OODDetector
    from mlcore.ml.models import build_model
    from mlcore.ml.transforms import PreprocessConfig

    torch.manual_seed(0)
    model = build_model(model_name).eval()
    size = int(model.default_cfg["img_size"])
    cfg = PreprocessConfig(image_size=size, mean=0.45, std=0.25)
    x = torch.randn(36, 1, size, size)
    out = run_model(model, x, mean=cfg.mean, std=cfg.std)
    labels = torch.arange(36) % 9
    ood = OODDetector.fit(train_embeddings=out.embeddings[:27], train_descriptors=out.descriptors[:27],
                          train_labels=labels[:27].numpy(), val_embeddings=out.embeddings[27:],
                          val_descriptors=out.descriptors[27:])
    ModelBundle(model_name=model_name, state_dict=model.state_dict(), preprocess=cfg,
                model_overrides={k: v for k, v in model.default_cfg.items() if k != "name"},
                ood=ood).save(dest)


def main() -> None:
    from mlcore.ml.models import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--no-explain", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="radviewer-mem-") as tmp:
        build_bundle(args.model, Path(tmp) / "bundle")
        weights_mb = (Path(tmp) / "bundle" / "weights.pt").stat().st_size / 2**20
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(Path(tmp) / "bundle"), str(args.images),
             "0" if args.no_explain else "1"],
            capture_output=True, text=True, check=True, cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"### Predictor memory: `{args.model}` ({weights_mb:.1f} MB weights), "
          f"{args.images} images, explain={not args.no_explain}, "
          f"{res['threads']} torch threads\n")
    print("| stage | RSS (MB) |")
    print("|---|---:|")
    for stage, mb in res["stages"].items():
        print(f"| {stage} | {mb:.0f} |")
    print(f"| **peak (ru_maxrss)** | **{res['peak_mb']:.0f}** |")
    print(f"\nbundle load {res['load_s'] * 1e3:.0f} ms; median predict latency "
          f"{res['median_ms']:.1f} ms per image (256x220 uint8 input, one per call)")


if __name__ == "__main__":
    main()
