"""Upload-to-prediction latency, embedded profile, one real Celery worker.

    python benchmarks/upload_to_prediction.py [--images 30] [--model NAME (default: the default variant)] [--size 1024]

Everything lives in a temporary directory: a SQLite database, the kombu filesystem broker,
media, and an MLflow store holding one model with random weights in ``production`` (latency
does not depend on the weights). A worker subprocess (``-Q inference,default``, solo pool,
as ``make run`` starts it) consumes the broker. Each image is uploaded through the upload
URL with Django's test client, then the status partial (what the study page polls) is
fetched every 20 ms until it shows the result. Uploads are sequential, so each number is
one reader's wait on an otherwise idle worker; the first upload (model load) is reported
apart. Prints p50 / p95 of the total and of its parts.

The browser polls once a second, so a reader sees the result on average ~0.5 s after the
"visible" time measured here.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def _percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _setup(var_dir: str, polling_interval: float | None) -> None:
    os.environ["RADVIEWER_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "radviewer.settings.base"
    if polling_interval is not None:
        # A settings module on top of the embedded profile, for this process and the worker.
        Path(var_dir, "bench_settings.py").write_text(
            "from radviewer.settings.base import *  # noqa\n"
            f"CELERY_BROKER_TRANSPORT_OPTIONS = {{**CELERY_BROKER_TRANSPORT_OPTIONS, 'polling_interval': {polling_interval}}}\n"
        )
        sys.path.insert(0, var_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join([var_dir, str(REPO), os.environ.get("PYTHONPATH", "")])
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(key, None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)


def _register_model(model_name: str) -> str:
    """Log ``model_name`` with random weights and give it the production alias."""
    import mlflow
    import torch
    from django.conf import settings

    from mlcore.ml import tracking
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.models import build_model
    from mlcore.ml.transforms import PreprocessConfig
    from mlcore.services.registry import registry_sync

    torch.manual_seed(0)
    model = build_model(model_name)
    size = int(model.default_cfg["img_size"])
    bundle = ModelBundle(model_name=model_name, state_dict=model.state_dict(),
                         preprocess=PreprocessConfig(image_size=size, mean=0.45, std=0.25),
                         metadata={"purpose": "benchmark: random weights"})
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = bundle.save(Path(tmp) / "bundle")
        with tracking.start_run(experiment="radviewer-benchmarks", run_name=model_name, log_system_metrics=False):
            mlflow.log_param("model_name", model_name)
            _, version = tracking.log_model_bundle(
                bundle_dir, image_size=size, class_keys=list(bundle.class_keys),
                preprocess=bundle.preprocess.to_dict(), temperature=1.0,
                registered_model_name=settings.MLFLOW_REGISTERED_MODEL,
            )
    tracking.set_alias(settings.MLFLOW_REGISTERED_MODEL, "production", version)
    registry_sync(name=settings.MLFLOW_REGISTERED_MODEL)
    return version


def _start_worker(var_dir: str, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "RADVIEWER_VAR_DIR": var_dir, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "radviewer", "worker", "-Q", "inference,default", "-c", "1",
         "--pool", "solo", "-l", "INFO", "--without-gossip", "--without-mingle", "-n", "bench@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def _image(seed: int, size: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 60 + 30 * rng.random((size, size))
    for cx in (0.33, 0.67):
        img[((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1] += 90
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _one(client, seed: int, size: int) -> dict[str, float]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clinical.models import Image

    data = _image(seed, size)
    start = time.perf_counter()
    response = client.post("/upload/file/", {"file": SimpleUploadedFile(f"b{seed}.png", data)}, HTTP_HX_REQUEST="true")
    uploaded = time.perf_counter()
    assert response.status_code == 201, response.content[:500]
    image = Image.objects.select_related("study").get(original_name=f"b{seed}.png")
    # Watch the row (one cheap query every 20 ms, so the watcher hardly competes with the
    # worker for CPU), then fetch the status partial once to prove the result is shown.
    finished = image.predictions.filter(status__in=["succeeded", "failed"])
    while not finished.exists():
        if time.perf_counter() - start > 120:
            raise TimeoutError("no prediction within 120 s")
        time.sleep(0.02)
    body = client.get(f"/studies/{image.study.uid}/status/?image={image.pk}", HTTP_HX_REQUEST="true").content.decode()
    visible = time.perf_counter()
    if 'class="probabilities"' not in body:
        raise RuntimeError(f"prediction failed or not shown: {body[:2000]}")
    prediction = image.predictions.get()
    return {
        "total_ms": (visible - start) * 1e3,
        "upload_ms": (uploaded - start) * 1e3,
        "queue_and_task_ms": (visible - uploaded) * 1e3,
        "model_ms": prediction.latency_ms or 0.0,
    }


def main() -> None:
    from mlcore.ml.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=1024, help="side of the uploaded PNG in pixels")
    parser.add_argument("--polling-interval", type=float, default=None,
                        help="kombu filesystem broker polling interval in s (default: as configured, kombu's 1 s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rv-bench-upload-") as tmp:
        _setup(tmp, args.polling_interval)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.test import Client

        from radviewer.accounts.roles import RADIOLOGIST
        from radviewer.accounts.services import roles_sync

        version = _register_model(args.model)
        roles_sync()
        user = get_user_model().objects.create_user(username="bench")  # no password: force_login
        user.groups.add(Group.objects.get(name=RADIOLOGIST))
        client = Client()
        client.force_login(user)
        worker = _start_worker(tmp, Path(tmp) / "worker.log")
        try:
            cold = _one(client, 0, args.size)
            runs = [_one(client, seed, args.size) for seed in range(1, args.images + 1)]
        except Exception:
            print((Path(tmp) / "worker.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    print(f"Upload -> prediction visible, {args.images} sequential {args.size}x{args.size} PNG uploads, "
          f"model {args.model} v{version} (random weights), embedded profile, one solo worker, "
          f"broker polling interval {args.polling_interval or 'default (1 s)'}.\n")
    print(f"First upload (worker loads the model): {cold['total_ms']:.0f} ms\n")
    print("| part | p50 ms | p95 ms |")
    print("|---|---|---|")
    for key, label in (("total_ms", "upload -> result visible"), ("upload_ms", "upload request (ingest, store)"),
                       ("queue_and_task_ms", "queue + task + store result"), ("model_ms", "model call (in task)")):
        values = [r[key] for r in runs]
        print(f"| {label} | {statistics.median(values):.0f} | {_percentile(values, 95):.0f} |")


if __name__ == "__main__":
    main()
