"""Inference throughput with 1 and 2 inference workers, service profile (PostgreSQL + Redis).

    python benchmarks/scaling.py [--images 60] [--workers 1,2] [--model vit-h16-128] [--size 1024]

A fresh PostgreSQL database (127.0.0.1:5432) and Redis db 12 (flushed) as broker and cache,
one model of the default variant with random weights in ``production`` (latency does not
depend on the weights), then for each worker count: that many Celery worker processes
(``-Q inference,default -c 1``, as Procfile.embedded and the Kubernetes inference
Deployment run one), two warm-up images per worker (model load), and a burst of
``--images`` DICOM instances ingested through the ingest service at once (what a PACS
pushing a batch does). Reports how long the burst took to drain (images/s), and each
prediction's wait from ingest to result (p50 / p95) and the model's own time per image.

The web tier's scaling (gunicorn workers) is measured by ``benchmarks/api_latency.py
--services --workers N``; docs/benchmarks.md puts both in one table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import machine_description, percentile  # noqa: E402

DB_NAME = "radviewer_scaling_bench"
REDIS_URL = "redis://127.0.0.1:6379/12"


def _services(var_dir: str) -> None:
    import psycopg
    import redis

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    for key in ("MLFLOW_TRACKING_URI", "AWS_STORAGE_BUCKET_NAME", "RADVIEWER_DATASET_URI"):
        os.environ.pop(key, None)
    os.environ.update(
        RADVIEWER_VAR_DIR=var_dir,
        DJANGO_SETTINGS_MODULE="radviewer.settings.base",
        DJANGO_DEBUG="false",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        CELERY_BROKER_URL=REDIS_URL,
        RADVIEWER_CACHE_URL=REDIS_URL,
        PYTHONPATH=str(REPO),
        # No blinded reads: every study gets its AI result like any other (the share does not
        # change the work, only who sees it).
        RADVIEWER_BLINDED_PERCENT="0",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _start_workers(n: int, var_dir: str, threads: int | None) -> list[subprocess.Popen]:
    procs, logs = [], []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:  # torch's intra-op threads (it reads OMP_NUM_THREADS at start)
        env["OMP_NUM_THREADS"] = str(threads)
    for i in range(n):
        log_path = Path(var_dir) / f"worker-{n}-{i}.log"
        logs.append(log_path)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "radviewer",
                    "worker",
                    "-Q",
                    "inference,default",
                    "-c",
                    "1",
                    "-l",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench{n}-{i}@%h",
                ],
                cwd=REPO,
                env=env,
                stdout=open(log_path, "w"),  # noqa: SIM115 (closed with the process)
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 120
    for proc, log_path in zip(procs, logs, strict=True):
        while "ready." not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ingest(datas: list[bytes], tag: str) -> list[int]:
    from clinical.services.ingest import image_ingest

    ids = []
    for i, data in enumerate(datas):
        outcome = image_ingest(data=data, filename=f"{tag}-{i}.dcm")
        ids.append(outcome.image.pk)
    return ids


def _wait(image_ids: list[int], timeout: float) -> None:
    from clinical.models import Prediction

    deadline = time.monotonic() + timeout
    pending = Prediction.objects.filter(image_id__in=image_ids).exclude(status__in=["succeeded", "failed"])
    while pending.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending.count()} predictions still pending after {timeout:.0f} s")
        time.sleep(0.1)
    failed = list(
        Prediction.objects.filter(image_id__in=image_ids, status="failed").values_list("failure_reason", flat=True)[:3]
    )
    if failed:
        raise RuntimeError(f"predictions failed: {failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60, help="images in the timed burst")
    parser.add_argument("--workers", default="1,2", help="inference worker counts to measure, in order")
    parser.add_argument("--model", default=None, help="model variant (default: the default variant)")
    parser.add_argument("--size", type=int, default=1024, help="rows = columns of the 12-bit DX instances")
    parser.add_argument(
        "--torch-threads",
        default="auto",
        help="torch threads per worker: 'auto' = CPUs / workers (OMP_NUM_THREADS), "
        "'default' = torch's own default (every CPU, in every worker), or a number",
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="rv-scaling-") as var_dir:
        _services(var_dir)
        from benchmarks.upload_to_prediction import _register_model
        from clinical.models import Prediction
        from mlcore.ml.models import DEFAULT_MODEL
        from tests.clinical.dicom_factory import make_cxr_dicom

        model = args.model or DEFAULT_MODEL
        _register_model(model)
        serial = iter(range(10**6))

        def instances(k: int) -> list[bytes]:
            return [
                make_cxr_dicom(rows=args.size, cols=args.size, accession=f"S{(s := next(serial))}", patient_id=f"P{s}")
                for _ in range(k)
            ]

        rows = []
        for n in counts:
            if args.torch_threads == "auto":
                threads: int | None = max(1, (os.cpu_count() or 1) // n)
            elif args.torch_threads == "default":
                threads = None
            else:
                threads = int(args.torch_threads)
            procs = _start_workers(n, var_dir, threads)
            try:
                warm = _ingest(instances(2 * n), f"warm{n}")
                _wait(warm, timeout=600)
                burst = instances(args.images)
                start = time.perf_counter()
                ids = _ingest(burst, f"burst{n}")
                ingested = time.perf_counter() - start
                _wait(ids, timeout=1800)
                wall = time.perf_counter() - start
            finally:
                _stop(procs)
            preds = list(
                Prediction.objects.filter(image_id__in=ids).values_list("created_at", "completed_at", "latency_ms")
            )
            waits = [(done - created).total_seconds() for created, done, _ in preds]
            model_ms = [ms for _, _, ms in preds if ms]
            rows.append((n, threads or "default", len(ids), ingested, wall, waits, model_ms))

    print(f"Machine: {machine_description()}")
    print(
        f"Model: {model} (random weights), DX {args.size}x{args.size} 12-bit DICOM through the ingest service; "
        "PostgreSQL + Redis (broker and cache) on the same machine\n"
    )
    print(
        "| inference workers | torch threads each | images | ingest s | drained in s | images/s | x of the first "
        "| wait p50 s | wait p95 s | model ms/image (median) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for n, threads, k, ingested, wall, waits, model_ms in rows:
        rate = k / wall
        base = base or rate
        print(
            f"| {n} | {threads} | {k} | {ingested:.1f} | {wall:.1f} | {rate:.2f} | {rate / base:.2f} | "
            f"{statistics.median(waits):.1f} | {percentile(waits, 95):.1f} | "
            f"{statistics.median(model_ms) if model_ms else float('nan'):.0f} |"
        )


if __name__ == "__main__":
    main()
