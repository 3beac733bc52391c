"""Server time of the ML admin's console pages with 50 versions and 100 training jobs.

    python benchmarks/console_pages.py [--versions 50] [--jobs 100] [--repeats 20]

Builds a throw-away embedded profile in a temporary directory (SQLite, MLflow sqlite store).
Two versions are real (random-weight ``vit-tiny-test`` registered in MLflow, evaluated on a
synthetic locked set and compared, so the version and comparison pages carry real reports
and plots); the other versions are mirror rows with metrics and lineage as registry_sync
writes them, with alias moves (change records, timeline) between them; each training job
has a 40-epoch history. Every page is then rendered through Django's test client as the
ML admin: the first request's time (cold caches in this process), then median and p95
server time (template rendering included) and queries per request.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks.compare import _register, _setup  # noqa: E402 (after the path insert)

NAME = "radviewer-triage"


def _fill(var_dir: str, versions: int, jobs: int) -> tuple[str, str]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
    from mlcore.models import AliasEvent, ChangeRecord, DatasetVersion, ModelVersion, TrainingJob
    from mlcore.services.comparison import comparison_compute
    from mlcore.services.datasets import dataset_version_register
    from mlcore.services.registry import registry_sync
    from radviewer.accounts.roles import ML_ADMIN
    from radviewer.accounts.services import roles_sync

    rng = random.Random(0)
    roles_sync()
    admin = get_user_model().objects.create_user(username="bench-admin")
    admin.groups.add(Group.objects.get(name=ML_ADMIN))
    store = LocalDatasetStore(Path(var_dir) / "datasets" / "bench")
    make_synthetic_dataset(store, per_class=30, size=48, seed=0,
                           fractions={"train": 0.5, "val": 0.2, "test": 0.1, "final_eval": 0.2})
    dataset = dataset_version_register(store_uri=store.uri, slug="bench", kind="training", actor=admin)
    real = [_register("vit-tiny-test", seed, NAME) for seed in (0, 1)]
    from mlcore.ml import tracking

    tracking.set_alias(NAME, "production", real[0])
    registry_sync(name=NAME)
    champion, challenger = (ModelVersion.objects.get(name=NAME, version=v) for v in real)
    comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)

    now = timezone.now()
    start = int(real[-1]) + 1
    rows = [ModelVersion(
        name=NAME, version=str(v), run_id="", variant="vit-h16-128",
        metrics={"test_macro_f1": rng.uniform(0.8, 0.92), "test_macro_f1_cxr4": rng.uniform(0.85, 0.93),
                 "final_eval_macro_f1_cxr4": rng.uniform(0.82, 0.9), "test_accuracy": rng.uniform(0.85, 0.93)},
        params={"model_name": "vit-h16-128", "epochs": "40", "seed": "42", "data.manifest_hash": dataset.manifest_hash},
        tags={"radviewer.git_commit": "0" * 40},
        registered_at=now - timedelta(days=versions - v)) for v in range(start, start + versions - len(real))]
    ModelVersion.objects.bulk_create(rows)
    # Alias moves between them: a closed timeline interval and a change record each.
    events, records = [], []
    t = now - timedelta(days=versions)
    for i, v in enumerate(range(start, start + versions - len(real))):
        alias = ("candidate", "canary")[i % 2]
        records.append(ChangeRecord(name=NAME, alias=alias, kind="promotion", from_version=str(v - 1),
                                    to_version=str(v), actor=admin, reason="benchmark move",
                                    gate={"passed": True, "criteria": []},
                                    sections={"modification": {"summary": f"v{v - 1} -> v{v}"}}))
        events.append(AliasEvent(name=NAME, alias=alias, version=str(v), started_at=t + timedelta(hours=i),
                                 ended_at=t + timedelta(hours=i + 1)))
    ChangeRecord.objects.bulk_create(records)
    AliasEvent.objects.bulk_create(events)
    history = [{"epoch": e, "epochs": 40, "train_loss": 2.0 / e, "val_loss": 2.1 / e,
                "val_macro_f1": 0.5 + e / 100, "seconds": 60.0} for e in range(1, 41)]
    states = ["succeeded"] * 80 + ["failed"] * 10 + ["cancelled"] * 5 + ["running"] * 4 + ["queued"]
    TrainingJob.objects.bulk_create([TrainingJob(
        state=states[i % len(states)], config={"model_name": "vit-h16-128", "epochs": 40, "batch_size": 32,
                                               "seed": 42, "lr": 5e-4, "store_uri": store.uri},
        dataset_version=dataset, created_by=admin, epoch=40, epochs=40, step=2100, total_steps=2100,
        history=history, log_tail="\n".join(f"epoch {e}/40 ..." for e in range(1, 41)),
        started_at=now - timedelta(hours=i + 1), finished_at=now - timedelta(hours=i),
        model_name=NAME, model_version=str(start + i % (versions - len(real))))
        for i in range(jobs)])
    assert DatasetVersion.objects.exists()
    return real[0], real[1]


def _measure(client, url: str, repeats: int) -> tuple[float, float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    t = time.perf_counter()
    first = client.get(url)  # the first request: template compilation, plot and report caches
    first_ms = (time.perf_counter() - t) * 1e3
    assert first.status_code == 200, (url, first.status_code)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t) * 1e3)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return first_ms, statistics.median(times), p95, len(ctx.captured_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radviewer-bench-console-") as var_dir:
        _setup(var_dir)
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.test.utils import setup_test_environment

        from mlcore.models import TrainingJob

        setup_test_environment()  # the test client's "testserver" host
        t0 = time.perf_counter()
        a, b = _fill(var_dir, args.versions, args.jobs)
        print(f"filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        client = Client()
        client.force_login(get_user_model().objects.get(username="bench-admin"))
        job = TrainingJob.objects.order_by("pk").first().pk
        pages = [
            ("/ml/ (versions, aliases, timeline)", "/ml/"),
            ("/ml/training/ (100 jobs)", "/ml/training/"),
            ("/ml/training/<id>/ (40 epochs of curves)", f"/ml/training/{job}/"),
            ("/ml/training/new (form)", "/ml/training/new"),
            ("/ml/versions/<v>/ (report, plots)", f"/ml/versions/{b}/"),
            ("/ml/compare/ (cached comparison, flip list)", f"/ml/compare/?a={a}&b={b}&dataset=bench"),
            ("/ml/versions/<v>/promote (gate verdict)", f"/ml/versions/{b}/promote?alias=production"),
            ("/ml/changes/", "/ml/changes/"),
            ("/ml/timeline/", "/ml/timeline/"),
            ("/ml/data/", "/ml/data/"),
            ("/ml/data/<slug>/ (counts, integrity, samples)", "/ml/data/bench/"),
        ]
        print(f"\nmachine: {os.cpu_count()} cores; {args.versions} versions, {args.jobs} training jobs; "
              f"{args.repeats} requests per page after one warm-up, Django test client (server time)\n")
        print("| page | first request ms | median ms | p95 ms | queries |\n|---|---:|---:|---:|---:|")
        for label, url in pages:
            first, med, p95, queries = _measure(client, url, args.repeats)
            print(f"| {label} | {first:.0f} | {med:.1f} | {p95:.1f} | {queries} |")


if __name__ == "__main__":
    main()
