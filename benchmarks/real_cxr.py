"""Real chest X-rays: the default variant vs DenseNet-121 (CheXNet's architecture), same split,
same recipe, a fixed number of epochs each (never a wall-clock budget).

    python benchmarks/real_cxr.py [--data ../shared/data/real-cxr] [--models a,b]
                                  [--epochs 40 | --epochs 40,10] [--seed 42]

1. The real-cxr store is the starter model's (``var/datasets/real-cxr``: de-duplication,
   patient-level split, seed 42), built from ``--data`` if missing.
2. Each model trains through ``mlcore.services.training.model_train`` -- the service behind
   ``manage.py train_model``, the starter model and the console's jobs -- with the recipe's
   defaults (``TrainConfig``: lr 5e-4, weight decay 0.05, warm-up + cosine, clipping,
   sqrt-inverse class weights, equalised inputs, augmentation) at the default variant's
   deployed input size, fp32. Each run is registered in the APP's registry (no alias), so a
   benchmark model can be compared and promoted like any other.
3. Both are scored as served (scope decided by the model) on ``test`` AND ``final_eval``:
   CXR 4-class macro-F1, accuracy on the CXR images, ECE, per-class figures, and a paired
   bootstrap of the macro-F1 difference on each split; then single-image latency through
   ``Predictor`` at that input size.

Read with the data set's README in mind: TB (6 images) and the OCT classes (8 each) only
show the pipeline handles them. Viral pneumonia and part of the normals are paediatric
(Kermany): a model can learn age rather than disease (docs/model-card.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radviewer.settings.base")

CXR4 = ("lung-covid", "lung-normal", "lung-opacity", "lung-viral-pneumonia")
SPLITS = ("test", "final_eval")


def predictor_latency(bundle, explain: bool, repeats: int = 15) -> float:
    import numpy as np

    from mlcore.ml.predictor import Predictor

    p = Predictor(bundle, version="bench", model_uri="local")
    img = np.random.default_rng(0).integers(0, 255, (256, 230), dtype=np.uint8)
    for _ in range(2):
        p.predict([img], explain=explain, scopes=["cxr"])
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p.predict([img], explain=explain, scopes=["cxr"])
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def scored(bundle, store, split: str):
    """(predicted class indices, labels) as served: scope decided by the model."""
    from mlcore.ml.evaluation.runner import bundle_outputs, scoped_probabilities

    out, labels = bundle_outputs(bundle, store, split)
    probs, _ = scoped_probabilities(bundle, out)
    return probs.argmax(axis=1), labels


def macro_f1_cxr4(pred, true, keys) -> float:
    import numpy as np

    f1s = []
    for c in (keys.index(k) for k in CXR4):
        tp = int(np.sum((pred == c) & (true == c)))
        fp, fn = int(np.sum((pred == c) & (true != c))), int(np.sum((pred != c) & (true == c)))
        if tp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def cxr_accuracy(pred, true, keys) -> float:
    import numpy as np

    cxr = np.isin(true, [keys.index(k) for k in CXR4])
    return float((pred[cxr] == true[cxr]).mean())


def paired_bootstrap(preds, labels, keys, *, resamples: int = 2000, seed: int = 0) -> str:
    """95 % intervals of each model's CXR macro-F1 and of their difference, from the same
    resampled images for both (paired: the split's own noise cancels)."""
    import numpy as np

    n = len(labels)
    rng = np.random.default_rng(seed)
    scores = np.zeros((resamples, len(preds)))
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        for m, p in enumerate(preds):
            scores[r, m] = macro_f1_cxr4(p[idx], labels[idx], keys)
    lo, hi = np.percentile(scores, [2.5, 97.5], axis=0)
    diff = scores[:, 0] - scores[:, 1]
    dlo, dhi = np.percentile(diff, [2.5, 97.5])
    parts = [f"{m}: [{a:.3f}, {b:.3f}]" for m, a, b in zip(("first", "second"), lo, hi, strict=False)]
    return (f"paired bootstrap ({resamples} resamples of the {n} images): {'; '.join(parts)}; "
            f"difference first - second {diff.mean():+.3f} [{dlo:+.3f}, {dhi:+.3f}], first >= "
            f"second in {100 * (diff >= 0).mean():.0f} % of resamples")


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.evaluation import evaluate_bundle
    from mlcore.ml.models import DEFAULT_MODEL, build_model
    from mlcore.ml.training.callbacks import print_epoch
    from mlcore.services.starter import STARTER_DATA, STARTER_PRECISION, starter_dataset
    from mlcore.services.training import model_train, train_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=STARTER_DATA)
    ap.add_argument("--store", default=str(settings.VAR_DIR / "datasets" / "real-cxr"))
    ap.add_argument("--models", default=f"{DEFAULT_MODEL},densenet121")
    ap.add_argument("--epochs", default="40", help="one count for all, or one per model (\"40,10\")")
    ap.add_argument("--image-size", type=int, default=None,
                    help="input size for every model (default: the default variant's, the deployed size)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    store = starter_dataset(data_dir=args.data, store_uri=args.store)
    size = args.image_size or int(build_model(DEFAULT_MODEL).default_cfg["img_size"])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    planned = [int(e) for e in str(args.epochs).split(",")]
    planned = planned * len(models) if len(planned) == 1 else planned
    if len(planned) != len(models):
        sys.exit(f"--epochs has {len(planned)} entries for {len(models)} models")
    print(f"store {args.store} (manifest {store.manifest_hash()[:12]}); {size} px; {STARTER_PRECISION}; "
          f"torch threads {os.cpu_count()}\n")

    results = {}
    for name, epochs in zip(models, planned, strict=True):
        cfg = train_config(store_uri=args.store, model_name=name, image_size=size, epochs=epochs,
                           seed=args.seed, precision=STARTER_PRECISION, run_name=f"benchmark-{name}-{size}px",
                           log_system_metrics=False, output_dir=str(settings.VAR_DIR / "benchmarks" / f"{name}-{size}"))
        t0 = time.perf_counter()
        res = model_train(config=cfg, actor_label="benchmark:real_cxr", on_epoch=print_epoch)
        bundle = ModelBundle.load(res.bundle_dir)
        results[name] = {"bundle": bundle, "wall_s": time.perf_counter() - t0, "version": res.model_version,
                         "epochs": epochs, "reports": {s: evaluate_bundle(bundle, store, s) for s in SPLITS},
                         "scored": {s: scored(bundle, store, s) for s in SPLITS}}
        print(f"{name}: {epochs} epochs in {results[name]['wall_s'] / 60:.1f} min, registered version "
              f"{res.model_version}\n")
    for r in results.values():
        r["lat"] = predictor_latency(r["bundle"], explain=False)
        r["lat_explain"] = predictor_latency(r["bundle"], explain=True)

    names = list(results)
    keys = list(results[names[0]]["bundle"].class_keys)
    print(f"### Real CXR at {size} px, same split and recipe, scored as served\n")
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for split in SPLITS:
        for label, fn in (("CXR 4-class macro-F1", macro_f1_cxr4), ("accuracy on CXR images", cxr_accuracy)):
            vals = [fn(*results[n]["scored"][split], keys) for n in names]
            print(f"| {label} ({split}) | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        print(f"| ECE ({split}) | " + " | ".join(f"{results[n]['reports'][split].ece:.3f}" for n in names) + " |")
    print("| epochs | " + " | ".join(str(results[n]["epochs"]) for n in names) + " |")
    print("| training wall time (min) | " + " | ".join(f"{results[n]['wall_s'] / 60:.1f}" for n in names) + " |")
    print("| predict latency, 1 image (ms) | " + " | ".join(f"{results[n]['lat']:.1f}" for n in names) + " |")
    print("| predict + explanation (ms) | " + " | ".join(f"{results[n]['lat_explain']:.1f}" for n in names) + " |")
    if len(names) == 2:
        a, b = names
        print(f"\nlatency ratio {a} / {b}: {results[a]['lat'] / results[b]['lat']:.2f}")
        for split in SPLITS:
            preds = [results[n]["scored"][split][0] for n in names]
            print(f"{split}, {a} first: " + paired_bootstrap(preds, results[a]["scored"][split][1], keys))

    for split in SPLITS:
        print(f"\n### Per class ({split}): sensitivity / specificity / F1 / AUC\n")
        print("| class | n | " + " | ".join(f"{n} sens | spec | F1 | AUC" for n in names) + " |")
        print("|---|---:|" + "---:|---:|---:|---:|" * len(names))
        first = results[names[0]]["reports"][split]
        for key in first.class_keys:
            if not first.per_class[key].support:
                continue
            cells = []
            for n in names:
                m = results[n]["reports"][split].per_class[key]
                cells += [f"{v:.3f}" if v is not None else "—" for v in (m.sensitivity, m.specificity, m.f1, m.auc)]
            mark = "" if key in CXR4 else " (too few images: meaningless)"
            print(f"| {key}{mark} | {first.per_class[key].support} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
