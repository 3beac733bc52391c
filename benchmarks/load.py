"""Bounded load test with faults: N API clients against gunicorn + 2 inference workers on
PostgreSQL + Redis, a Redis restart and a worker SIGKILL during the run (issue 13 item 18).

    python benchmarks/load.py [--clients 50] [--duration 300] [--stow-share 0.3]
        [--pg postgres://postgres@127.0.0.1:5432] [--stale-seconds 210] [--json out.json]

Loopback only; everything is the script's own and is removed afterwards (``--keep`` keeps it):
a PostgreSQL database ``radviewer_load_<pid>`` on the server ``--pg`` names, a redis-server on
a free port (no persistence, so its restart loses every queued message, the hard case), and a
var directory (media, MLflow store with the shipped starter model in production). The
processes run under ``scripts/supervise.py`` as ``make run`` runs them: gunicorn (2 workers,
4 threads), two inference workers (``-Q inference,default -c 1``) and beat (the prediction
sweeper and reaper); the supervisor restarts the worker the script SIGKILLs.

Each client is its own API client (own token, the default 600 requests/minute) and loops:
submit one study, REST (``POST /api/v1/studies/``, a PNG, or a DICOM file) or STOW-RS (a
DICOM instance), built from a real chest X-ray of ``../shared/data/real-cxr`` (read, never
copied; every submission's bytes and UIDs are new, so nothing is deduplicated), then poll
``GET /api/v1/studies/<uid>/`` every ``--poll-interval`` seconds until its triage is done.

Faults, at fractions of the duration: the Redis server is stopped (SIGTERM) at 35 % and
started again ``--redis-down`` seconds later; the first inference worker's main process gets
SIGKILL at 65 %. A fault window runs from the fault to its end plus ``--fault-grace``
seconds; requests started inside one are reported apart.

Reported: requests and the error rate outside the fault windows (an error is a 5xx, a
transport error or timeout, or any status the API should not give here; target < 0.1 %),
the same inside them, latency percentiles per request kind, time from submission to a
finished triage; then, after a drain wait (until every prediction is finished, at most
``--drain-timeout`` s), every accepted study triaged and 0 predictions stuck. The exit status
is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
DATA = REPO.parent / "shared" / "data" / "real-cxr"
CXR_CLASSES = ("lung-covid", "lung-normal", "lung-opacity", "lung-viral-pneumonia")
ERROR_RATE_TARGET = 0.001
REQUEST_TIMEOUT_S = 60
# The caller's settings must not leak into the processes under test.
SCRUBBED_ENV = ("DJANGO_", "RADVIEWER_", "MLFLOW_", "AWS_", "CELERY_", "DATABASE_")


# ---------------------------------------------------------------- process plumbing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Redis:
    """A redis-server of the script's own on a fixed loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found (Debian package redis-server)")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not port_open(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None


class Supervised:
    """``scripts/supervise.py`` over a Procfile of the script's own; its output goes to a log,
    and the pid of each process's latest start is read from it."""

    PID_LINE = re.compile(r"^\S+ (\S+)\s+\| started with pid (\d+)$")

    def __init__(self, procfile: Path, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.pids: dict[str, int] = {}
        self.starts: Counter[str] = Counter()
        self.killed_groups: list[int] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "supervise.py"), str(procfile)], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            match = self.PID_LINE.match(line.rstrip("\n"))
            if match:
                with self._lock:
                    self.pids[match.group(1)] = int(match.group(2))
                    self.starts[match.group(1)] += 1

    def pid(self, name: str) -> int:
        with self._lock:
            return self.pids[name]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self._log.close()
        for group in self.killed_groups:  # a pool process the killed main process left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def run_manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# ---------------------------------------------------------------- studies to send


class Images:
    """Real chest X-rays (PNG) from the shared data set, read once into memory."""

    def __init__(self, root: Path, limit: int) -> None:
        if not root.is_dir():
            raise SystemExit(f"{root} not found: the real-cxr images (../shared/data/real-cxr, see its README)")
        paths = sorted(p for c in CXR_CLASSES for p in (root / c).glob("*.png"))
        if not paths:
            raise SystemExit(f"no PNG images under {root}/<class>/")
        random.Random(0).shuffle(paths)
        self.blobs = [p.read_bytes() for p in paths[:limit]]

    def pick(self, rng: random.Random) -> bytes:
        return rng.choice(self.blobs)


def unique_png(png: bytes) -> bytes:
    """The same pixels with a text chunk of a fresh UUID: new bytes, so never a duplicate."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", f"radviewer load test {uuid.uuid4()}")
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("L").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def png_to_dicom(png: bytes) -> bytes:
    """A DX For Presentation instance (8-bit MONOCHROME2) of the PNG's pixels, new UIDs."""
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = "Load^Test", f"LOAD-{uuid.uuid4().hex[:12]}"
    ds.AccessionNumber = uuid.uuid4().hex[:16]
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.StudyDate = ds.ContentDate = time.strftime("%Y%m%d")
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def stow_body(dicom: bytes) -> tuple[bytes, str]:
    boundary = f"load-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dicom
            + f"\r\n--{boundary}--\r\n".encode())
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


# ---------------------------------------------------------------- the clients


@dataclass
class Sample:
    kind: str  # submit_rest_png, submit_rest_dicom, submit_stow, poll
    start: float  # seconds since the load began
    seconds: float
    status: int  # 0: no answer (transport error or timeout)
    error: str = ""


@dataclass
class Accepted:
    uid: str
    submitted: float
    triaged_after: float | None = None


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)
    accepted: dict[str, Accepted] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)


EXPECTED = {"submit_rest_png": {202}, "submit_rest_dicom": {202}, "submit_stow": {200}, "poll": {200}}


def client_loop(*, number: int, base: str, token: str, images: Images, stow_share: float, poll_interval: float,
                t0: float, stop_at: float, results: Results) -> None:
    import requests

    rng = random.Random(number)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def call(kind: str, method: str, url: str, **kwargs) -> requests.Response | None:
        start = time.monotonic()
        try:
            response = session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            results.add(Sample(kind, start - t0, time.monotonic() - start, 0, type(exc).__name__))
            return None
        error = "" if response.status_code in EXPECTED[kind] else response.text[:200]
        results.add(Sample(kind, start - t0, time.monotonic() - start, response.status_code, error))
        return response if not error else None

    while time.monotonic() < stop_at:
        png = images.pick(rng)
        roll = rng.random()
        submitted = time.monotonic()
        if roll < stow_share:
            body, content_type = stow_body(png_to_dicom(png))
            response = call("submit_stow", "POST", f"{base}/dicomweb/studies", data=body,
                            headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
            uid = None
            if response is not None:
                retrieve = response.json().get("00081190", {}).get("Value", [""])[0]
                uid = urlsplit(retrieve).path.rstrip("/").rsplit("/", 1)[-1] or None
        else:
            dicom = roll < stow_share + (1 - stow_share) / 3
            data, name = (png_to_dicom(png), "chest.dcm") if dicom else (unique_png(png), "chest.png")
            response = call("submit_rest_dicom" if dicom else "submit_rest_png", "POST", f"{base}/api/v1/studies/",
                            files={"files": (name, data)})
            uid = response.json()["uid"] if response is not None else None
        if uid is None:
            time.sleep(poll_interval)  # as a sender would before trying the next study
            continue
        record = Accepted(uid, submitted - t0)
        with results.lock:
            results.accepted[uid] = record
        while time.monotonic() < stop_at:
            time.sleep(poll_interval)
            response = call("poll", "GET", f"{base}/api/v1/studies/{uid}/")
            if response is not None and response.json().get("status") != "processing":
                record.triaged_after = time.monotonic() - submitted
                break


# ---------------------------------------------------------------- reporting


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    data = sorted(values)

    def q(p: float) -> float:
        pos = (len(data) - 1) * p / 100
        lo, hi = int(pos), min(int(pos) + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    return {"n": len(data), "p50_ms": q(50) * 1e3, "p95_ms": q(95) * 1e3, "p99_ms": q(99) * 1e3,
            "max_ms": data[-1] * 1e3}


def in_window(t: float, windows: list[tuple[str, float, float]]) -> bool:
    return any(start <= t <= end for _, start, end in windows)


def summarise(results: Results, windows: list[tuple[str, float, float]]) -> dict:
    outside = [s for s in results.samples if not in_window(s.start, windows)]
    inside = [s for s in results.samples if in_window(s.start, windows)]

    def errors(samples: list[Sample]) -> dict:
        bad = [s for s in samples if s.status not in EXPECTED[s.kind]]
        return {"requests": len(samples), "errors": len(bad),
                "error_rate": len(bad) / len(samples) if samples else 0.0,
                "by_status": dict(Counter(str(s.status) + (f" {s.error[:60]}" if s.status == 0 else "")
                                          for s in bad))}

    latency = {kind: percentiles([s.seconds for s in outside if s.kind == kind and s.status in EXPECTED[kind]])
               for kind in sorted({s.kind for s in results.samples})}
    triage = [a.triaged_after for a in results.accepted.values() if a.triaged_after is not None]
    return {"outside_fault_windows": errors(outside), "inside_fault_windows": errors(inside),
            "latency_outside_windows": latency, "time_to_triage_seen_by_clients": percentiles(triage)}


def database_state(uids: set[str]) -> dict:
    from django.db.models import Count

    from clinical.models import Prediction, Study

    studies = Study.objects.filter(uid__in=uids)
    predictions = Prediction.objects.filter(image__study__uid__in=uids)
    return {
        "accepted_studies": len(uids),
        "found_in_database": studies.count(),
        "studies_by_status": dict(studies.values_list("status").annotate(n=Count("id")).order_by()),
        "predictions_by_status": dict(predictions.values_list("status").annotate(n=Count("id")).order_by()),
        "predictions_attempts_gt_1": predictions.filter(attempts__gt=1).count(),
        "all_predictions_total": Prediction.objects.count(),
        "all_unfinished": Prediction.objects.filter(status__in=["queued", "running"]).count(),
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (the drain wait comes after)")
    parser.add_argument("--stow-share", type=float, default=0.3, help="share of submissions over STOW-RS")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (4 threads each)")
    parser.add_argument("--redis-restart-at", type=float, default=0.35, help="fraction of the duration")
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds the Redis server is down")
    parser.add_argument("--kill-worker-at", type=float, default=0.65, help="fraction of the duration")
    parser.add_argument("--fault-grace", type=float, default=15.0,
                        help="seconds after a fault's end still counted inside its window")
    parser.add_argument("--sweep-seconds", type=int, default=30, help="RADVIEWER_PREDICTION_SWEEP_SECONDS")
    parser.add_argument("--requeue-after", type=int, default=60, help="RADVIEWER_PREDICTION_REQUEUE_AFTER_SECONDS")
    parser.add_argument("--stale-seconds", type=int, default=210, help="RADVIEWER_PREDICTION_STALE_SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="seconds to wait for every prediction to finish (default: stale + requeue + "
                             "3 sweeps + 120)")
    parser.add_argument("--images", type=int, default=400, help="how many real-cxr images to cycle through")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server; the script creates and drops its own database there")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and database")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    drain_timeout = args.drain_timeout or args.stale_seconds + args.requeue_after + 3 * args.sweep_seconds + 120

    import psycopg

    images = Images(DATA, args.images)
    workdir = Path(tempfile.mkdtemp(prefix="radviewer-load-"))
    db_name = f"radviewer_load_{os.getpid()}"
    server = args.pg.rstrip("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    redis = Redis(workdir)
    redis.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV)}
    env.update({
        "DJANGO_SETTINGS_MODULE": "radviewer.settings.base", "DATABASE_URL": f"{server}/{db_name}",
        "CELERY_BROKER_URL": redis.url, "RADVIEWER_VAR_DIR": str(workdir / "var"), "PYTHONUNBUFFERED": "1",
        "RADVIEWER_PREDICTION_SWEEP_SECONDS": str(args.sweep_seconds),
        "RADVIEWER_PREDICTION_REQUEUE_AFTER_SECONDS": str(args.requeue_after),
        "RADVIEWER_PREDICTION_STALE_SECONDS": str(args.stale_seconds),
        "RADVIEWER_LOG_LEVEL": "WARNING",
    })
    os.environ.update(env)
    for key in [k for k in os.environ if k not in env and k.startswith(SCRUBBED_ENV)]:
        del os.environ[key]  # this process's own Django (the drain's queries) must see env only
    supervised: Supervised | None = None
    try:
        print(f"setup: database {db_name}, redis :{redis.port}, web :{port}, work dir {workdir}", flush=True)
        run_manage(env, "migrate", "--no-input", "-v", "0")
        print(run_manage(env, "ensure_starter_model").strip(), flush=True)
        import django

        django.setup()
        from clinical.services.api_clients import api_client_create

        tokens = [api_client_create(name=f"load-{i}", scopes="submit,read").token for i in range(args.clients)]
        from django.db import connection

        connection.close()
        venv = Path(sys.executable).parent
        procfile = workdir / "Procfile.load"
        worker = (f"{venv}/celery -A radviewer worker -Q inference,default -c 1 -l WARNING --without-gossip "
                  "--without-mingle")
        procfile.write_text(
            f"web: {venv}/gunicorn radviewer.wsgi --bind 127.0.0.1:{port} --workers {args.web_workers} "
            "--threads 4 --timeout 60\n"
            f"inference1: {worker} -n inference1@%h\n"
            f"inference2: {worker} -n inference2@%h\n"
            f"beat: {venv}/celery -A radviewer beat -s {workdir}/beat-schedule -l WARNING\n")
        supervised = Supervised(procfile, env, workdir / "supervise.log")
        base = f"http://127.0.0.1:{port}"
        warm_up(base, tokens[0], images, supervised)
        print(f"load: {args.clients} clients for {args.duration:.0f} s", flush=True)

        results = Results()
        t0 = time.monotonic()
        stop_at = t0 + args.duration
        windows: list[tuple[str, float, float]] = []
        faults = threading.Thread(target=inject_faults, daemon=True,
                                  args=(args, t0, redis, supervised, windows))
        threads = [threading.Thread(target=client_loop, daemon=True, kwargs={
            "number": i, "base": base, "token": tokens[i], "images": images, "stow_share": args.stow_share,
            "poll_interval": args.poll_interval, "t0": t0, "stop_at": stop_at, "results": results})
            for i in range(args.clients)]
        for t in threads:
            t.start()
        faults.start()
        progress(results, t0, stop_at)
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT_S + 10)
        faults.join(timeout=60)
        load_seconds = time.monotonic() - t0

        uids = set(results.accepted)
        print(f"drain: waiting up to {drain_timeout:.0f} s for {len(uids)} accepted studies", flush=True)
        drain_start = time.monotonic()
        from clinical.models import Prediction, Study

        while time.monotonic() - drain_start < drain_timeout:
            if not Prediction.objects.filter(status__in=["queued", "running"]).exists() and \
                    not Study.objects.filter(uid__in=uids, status=Study.Status.PROCESSING).exists():
                break
            time.sleep(2)
        drained_after = time.monotonic() - drain_start
        state = database_state(uids)
        report = {
            "clients": args.clients, "duration_s": args.duration, "load_s": round(load_seconds, 1),
            "stow_share": args.stow_share, "web_workers": args.web_workers,
            "fault_windows": [{"fault": name, "start_s": round(a, 1), "end_s": round(b, 1)} for name, a, b in windows],
            "worker_starts": dict(supervised.starts),
            **summarise(results, windows),
            "drain_s": round(drained_after, 1), "database": state,
        }
        finished = {"succeeded", "failed"}
        # Triaged: a result a reader can see; a study whose triage failed does not count.
        triaged = sum(n for status, n in state["studies_by_status"].items()
                      if status in ("awaiting_review", "reviewed", "signed_off"))
        report["targets"] = {
            "error_rate_outside_windows_below_0.1%":
                report["outside_fault_windows"]["error_rate"] < ERROR_RATE_TARGET,
            "every_accepted_study_triaged": state["found_in_database"] == len(uids) == triaged,
            "zero_stuck": state["all_unfinished"] == 0 and all(
                status in finished for status in state["predictions_by_status"]),
            "fault_windows_happened": len(windows) == 2,
        }
        print(json.dumps(report, indent=2, default=str))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
        return 0 if all(report["targets"].values()) else 1
    finally:
        if supervised is not None:
            supervised.stop()
        redis.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept: database {db_name}, work dir {workdir}")


def warm_up(base: str, token: str, images: Images, supervised: Supervised) -> None:
    """Wait for the web server, then for one study triaged end to end (the workers loaded the model)."""
    import requests

    deadline = time.monotonic() + 180
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or supervised.proc.poll() is not None:
            raise SystemExit(f"the web server did not start; see {supervised.log_path}")
        time.sleep(0.5)
    headers = {"Authorization": f"Bearer {token}"}
    uids = []
    for i in range(4):
        response = requests.post(f"{base}/api/v1/studies/", headers=headers, timeout=REQUEST_TIMEOUT_S,
                                 files={"files": (f"warm{i}.png", unique_png(images.blobs[i]))})
        if response.status_code != 202:
            raise SystemExit(f"warm-up submission answered {response.status_code}: {response.text[:300]}")
        uids.append(response.json()["uid"])
    for uid in uids:
        while requests.get(f"{base}/api/v1/studies/{uid}/", headers=headers, timeout=10).json()["status"] == "processing":
            if time.monotonic() > deadline:
                raise SystemExit(f"warm-up study {uid} not triaged in time; see {supervised.log_path}")
            time.sleep(0.5)
    print("warm-up: web server up, 4 studies triaged", flush=True)


def inject_faults(args, t0: float, redis: Redis, supervised: Supervised, windows: list) -> None:
    events = sorted([(args.redis_restart_at, "redis_restart"), (args.kill_worker_at, "worker_sigkill")])
    for fraction, name in events:
        time.sleep(max(0.0, t0 + fraction * args.duration - time.monotonic()))
        start = time.monotonic() - t0
        if name == "redis_restart":
            redis.stop()
            print(f"fault: Redis stopped at {start:.1f} s", flush=True)
            time.sleep(args.redis_down)
            redis.start()
            end = time.monotonic() - t0
            print(f"fault: Redis started again at {end:.1f} s", flush=True)
        else:
            pid = supervised.pid("inference1")
            os.kill(pid, signal.SIGKILL)
            supervised.killed_groups.append(pid)  # its own session: the pool process's group too
            end = time.monotonic() - t0
            print(f"fault: inference1 (pid {pid}) SIGKILLed at {end:.1f} s", flush=True)
        windows.append((name, start, end + args.fault_grace))


def progress(results: Results, t0: float, stop_at: float) -> None:
    last = 0
    while time.monotonic() < stop_at:
        time.sleep(min(10.0, max(0.0, stop_at - time.monotonic())))
        with results.lock:
            samples = results.samples[last:]
            last = len(results.samples)
            accepted = len(results.accepted)
        codes = Counter(s.status for s in samples)
        print(f"  t={time.monotonic() - t0:5.0f} s  requests {len(samples):5d}  statuses {dict(codes)}  "
              f"accepted so far {accepted}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
