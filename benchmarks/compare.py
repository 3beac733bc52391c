"""Comparison of two versions on ~1,000 images: cold (no cached predictions), from the
per-image prediction cache, and cached (the Django cache of the computed comparison).

    python benchmarks/compare.py [--images 1000] [--variant vit-h16-128] [--size 128]

Builds a throw-away embedded profile in a temporary directory (SQLite, MLflow sqlite store),
registers two random-weight versions of ``--variant`` (the starter model's variant by default,
so the model costs what the real one costs; its predictions mean nothing), writes a synthetic
store whose ``final_eval`` holds ``--images`` phantoms over the five CXR classes, then times
``mlcore.services.comparison.comparison_compute``:

- cold: both versions evaluated (bundle download, every image through both models, reports
  with 2,000-resample intervals and plots), then the paired statistics;
- from the prediction cache: the same with the Django cache cleared and two new
  evaluations of another set over the same images (no model call: every prediction cached);
- cached: the same comparison again (a cache read).

Prints a markdown table; the machine line says how many cores it had.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

CXR = ("lung-covid", "lung-normal", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")


def _setup(var_dir: str) -> None:
    os.environ["RADVIEWER_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "radviewer.settings.base"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{var_dir}/mlflow.db"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _register(variant: str, seed: int, name: str) -> str:
    import torch
    from django.conf import settings

    from mlcore.ml import tracking
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.models import build_model
    from mlcore.ml.scope import ScopeRule
    from mlcore.ml.transforms import PreprocessConfig

    torch.manual_seed(seed)
    model = build_model(variant)
    size = int(model.default_cfg["img_size"])
    bundle = ModelBundle(model_name=variant, state_dict=model.state_dict(),
                         preprocess=PreprocessConfig(image_size=size, mean=0.45, std=0.25),
                         metadata={"purpose": "benchmark: random weights"}, scope_rule=ScopeRule(threshold=0.5))
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = bundle.save(Path(tmp) / "bundle")
        with tracking.start_run(experiment="benchmark", run_name=f"random-{seed}", log_system_metrics=False):
            import mlflow

            mlflow.log_param("model_name", variant)
            _, version = tracking.log_model_bundle(
                bundle_dir, image_size=size, class_keys=list(bundle.class_keys),
                preprocess=bundle.preprocess.to_dict(), temperature=1.0, registered_model_name=name)
    return str(version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--variant", default="vit-h16-128")
    parser.add_argument("--size", type=int, default=128, help="phantom side in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radviewer-bench-compare-") as var_dir:
        _setup(var_dir)
        import torch
        from django.core.cache import cache

        from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
        from mlcore.models import DatasetVersion, ModelVersion, PredictionCache
        from mlcore.services.comparison import comparison_compute
        from mlcore.services.evaluations import evaluation_request, evaluation_run
        from mlcore.services.registry import registry_sync

        name = "radviewer-bench"
        t0 = time.perf_counter()
        store = LocalDatasetStore(Path(var_dir) / "store")
        per_class = -(-args.images // len(CXR))
        make_synthetic_dataset(store, per_class=per_class + 2, size=args.size, seed=0, classes=CXR,
                               fractions={"train": 0.01, "final_eval": 0.99})
        versions = [_register(args.variant, seed, name) for seed in (0, 1)]
        registry_sync(name=name)
        dataset = DatasetVersion.objects.create(slug="bench", store_uri=store.uri, manifest_hash=store.manifest_hash())
        champion, challenger = (ModelVersion.objects.get(name=name, version=v) for v in versions)
        n = len(store.rows("final_eval"))
        print(f"setup: {n} final_eval images, {args.variant}, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

        t = time.perf_counter()
        result = comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)
        cold = time.perf_counter() - t
        rows = PredictionCache.objects.count()

        cache.clear()
        t = time.perf_counter()
        for v in (champion, challenger):  # another set over the same images: every prediction cached
            evaluation_run(evaluation_id=evaluation_request(model_version=v, dataset_version=dataset,
                                                            set_name="final_eval", enqueue=False).pk)
        from_cache_evals = time.perf_counter() - t
        t = time.perf_counter()
        comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)
        recompute = time.perf_counter() - t
        t = time.perf_counter()
        comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)
        cached = time.perf_counter() - t
        assert PredictionCache.objects.count() == rows == 2 * n

        print(f"\nmachine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"variant {args.variant}; n={n}; flips {len(result['flips'])}\n")
        print("| step | seconds |\n|---|---:|")
        print(f"| cold: evaluate both (every image through both models) + compare | {cold:.1f} |")
        print(f"| two more evaluations of the same images from the prediction cache | {from_cache_evals:.1f} |")
        print(f"| comparison recomputed from the prediction cache (Django cache cleared) | {recompute:.2f} |")
        print(f"| cached comparison | {cached:.3f} |")


if __name__ == "__main__":
    main()
