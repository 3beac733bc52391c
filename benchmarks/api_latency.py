"""Integration API latency on loopback: STOW-RS acknowledgement and REST status polling.

    python benchmarks/api_latency.py [--clients 8] [--stores 10] [--polls 25] [--size 1024]
                                     [--workers 4] [--threads 1] [--services]

Starts a real server - gunicorn from the venv, embedded profile (SQLite, filesystem broker)
in a temporary RADVIEWER_VAR_DIR, or with ``--services`` PostgreSQL and Redis - with a registered random-weight model so triage is routed
and queued but, with no worker running, not computed: the STOW-RS figure is the time until a
PACS gets its acknowledgement (size check, parse, decode, de-identify, store, rows, audit,
task queued), which is what a sender waits for. ``--clients`` PACS send concurrently, each
its own instances (distinct studies), then poll study results over REST. The table adds
the CPU time the server and this client process used per request: on the 2-core box the
client is load the server competes with.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import machine_description, percentile  # noqa: E402
from tests.clinical.dicom_factory import make_cxr_dicom  # noqa: E402

PY = sys.executable
SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "RADVIEWER_DATASET_URI",
                "AWS_STORAGE_BUCKET_NAME", "RADVIEWER_CACHE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], env: dict) -> str:
    return subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout


def prepare(var: Path, env: dict) -> str:
    run([PY, "manage.py", "migrate", "--noinput"], env)
    # Registered in MLflow and mirrored into the app's registry (what `make run` does for the
    # starter model): without the mirror every study fails routing ("no production alias") at
    # ingest and the figure would be that error path's, not the acknowledgement a PACS waits for.
    run([PY, "-c", "import django; django.setup(); "
                   "from django.conf import settings; "
                   "from tests.support.models import register_random_model as r; "
                   "from mlcore.services.registry import registry_sync; "
                   "r(tracking_uri=settings.MLFLOW_TRACKING_URI, name=settings.MLFLOW_REGISTERED_MODEL); "
                   "registry_sync(name=settings.MLFLOW_REGISTERED_MODEL)"], env)
    out = run([PY, "manage.py", "create_api_client", "--name", "bench-pacs", "--scopes", "submit,read",
               "--rate-limit", "1000000"], env)
    return re.search(r"token:\s+(\S+)", out).group(1)


def stow_body(dicom: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dicom
            + f"\r\n--{boundary}--\r\n".encode())
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def timed_calls(n_clients: int, jobs: list[list], call) -> tuple[list[float], list, float]:
    """Each client runs its jobs sequentially, clients concurrently; returns latencies in ms."""
    def client(job_list):
        session, out = requests.Session(), []
        for job in job_list:
            start = time.perf_counter()
            result = call(session, job)
            out.append(((time.perf_counter() - start) * 1e3, result))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_clients) as pool:
        results = [r for chunk in pool.map(client, jobs) for r in chunk]
    wall = time.perf_counter() - start
    return [ms for ms, _ in results], [r for _, r in results], wall


def services_env() -> dict[str, str]:
    """A fresh PostgreSQL database and Redis db 13 (flushed) for one run."""
    import psycopg
    import redis

    name = "radviewer_api_bench"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    redis.Redis.from_url("redis://127.0.0.1:6379/13").flushdb()
    return {"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13", "RADVIEWER_CACHE_URL": "redis://127.0.0.1:6379/13"}


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the server (gunicorn and its workers) and by
    this client process: on a 2-core box the client's share is load the server competes with."""
    import psutil

    server = psutil.Process(server_pid)
    procs = [server, *server.children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    own = psutil.Process().cpu_times()
    return total, own.user + own.system


def summary(name: str, ms: list[float], wall: float, cpu: tuple[float, float]) -> str:
    n = len(ms)
    return (f"| {name} | {n} | {statistics.median(ms):.0f} | {percentile(ms, 95):.0f} | "
            f"{max(ms):.0f} | {n / wall:.1f} | {1e3 * cpu[0] / n:.1f} | {1e3 * cpu[1] / n:.1f} |")


def delta(after: tuple[float, float], before: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--stores", type=int, default=10, help="STOW-RS requests per client")
    parser.add_argument("--polls", type=int, default=25, help="status polls per client")
    parser.add_argument("--size", type=int, default=1024, help="rows = columns of the 12-bit CXR")
    parser.add_argument("--workers", type=int, default=4,
                        help="gunicorn workers (gunicorn.conf.py on 2 cores: 4; Procfile.embedded: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn threads per worker (gunicorn.conf.py: 1, sync workers; Procfile.embedded: 4)")
    parser.add_argument("--services", action="store_true",
                        help="the production service profile instead of the embedded default: PostgreSQL "
                             "(a fresh database on 127.0.0.1:5432), Redis as broker and cache (db 13)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rv-api-bench-") as tmp:
        var = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
        env.update(RADVIEWER_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="radviewer.settings.base",
                   DJANGO_DEBUG="false", PYTHONPATH=str(REPO))
        if args.services:
            env.update(services_env())
        token = prepare(var, env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [str(Path(PY).parent / "gunicorn"), "radviewer.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "120"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(var / "gunicorn.log", "w"),  # noqa: SIM115
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{base}/healthz", timeout=2).ok:
                        break
                except requests.RequestException:  # not listening yet, or busy starting
                    time.sleep(0.3)
            else:
                raise RuntimeError((var / "gunicorn.log").read_text()[-2000:])
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"}

            total = args.clients * args.stores + 2 * args.workers
            bodies = [stow_body(make_cxr_dicom(rows=args.size, cols=args.size, accession=f"B{i}",
                                               patient_id=f"P{i}")) for i in range(total)]
            size_kb = len(bodies[0][0]) / 1024

            def stow(session, item):
                body, ctype = item
                r = session.post(f"{base}/dicomweb/studies", data=body, timeout=120,
                                 headers={**headers, "Content-Type": ctype})
                if r.status_code != 200:
                    raise RuntimeError(f"STOW-RS {r.status_code}: {r.text[:300]}")
                return r.json()["00081190"]["Value"][0]

            warm = [bodies.pop() for _ in range(2 * args.workers)]  # import paths, first queries
            timed_calls(args.workers, [[w] for w in warm], stow)
            jobs = [bodies[i::args.clients] for i in range(args.clients)]
            cpu0 = cpu_seconds(server.pid)
            stow_ms, urls, stow_wall = timed_calls(args.clients, jobs, stow)
            stow_cpu = delta(cpu_seconds(server.pid), cpu0)

            def poll(session, url):
                r = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
                if r.status_code != 200:
                    raise RuntimeError(f"poll {r.status_code}: {r.text[:300]}")
                return r.json()["status"]

            poll_jobs = [[urls[(i * 7 + k) % len(urls)] for k in range(args.polls)] for i in range(args.clients)]
            cpu0 = cpu_seconds(server.pid)
            poll_ms, statuses, poll_wall = timed_calls(args.clients, poll_jobs, poll)
            poll_cpu = delta(cpu_seconds(server.pid), cpu0)
        finally:
            server.terminate()
            server.wait(timeout=30)

    failed = sorted(set(statuses) - {"processing", "queued"})
    if failed:  # the acknowledgement of a study that could not be routed is not the figure wanted
        raise SystemExit(f"studies in {failed} while polling: see the server log (no inference worker runs, "
                         "so every study should still be processing)")
    print(f"Machine: {machine_description()}")
    profile = ("service profile (PostgreSQL, Redis broker and cache)" if args.services
               else "embedded profile (SQLite, filesystem broker)")
    print(f"Server: gunicorn {args.workers} workers x {args.threads} threads, {profile}, "
          f"no inference worker; {args.clients} concurrent clients on loopback")
    print(f"Instance: single-frame DX {args.size}x{args.size} 12-bit, {size_kb:.0f} KiB per STOW-RS body\n")
    print("| request | n | median ms | p95 ms | max ms | requests/s | server CPU ms/request | client CPU ms/request |")
    print("|---|---|---|---|---|---|---|---|")
    print(summary("STOW-RS store, acknowledged (ingest only)", stow_ms, stow_wall, stow_cpu))
    print(summary("GET /api/v1/studies/{uid}/ (status poll)", poll_ms, poll_wall, poll_cpu))
    print(f"\nstatuses seen while polling: {sorted(set(statuses))}")
    print(f"slowest STOW-RS acknowledgements (ms): {[round(x) for x in sorted(stow_ms)[-8:]]}")
    print(f"slowest polls (ms): {[round(x) for x in sorted(poll_ms)[-8:]]}")


if __name__ == "__main__":
    main()
