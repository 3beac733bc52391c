"""Production upload-to-prediction latency with the shadow on vs off, in the same run.

    python benchmarks/shadow_latency.py [--per-arm 40] [--block 5] [--gap 0] [--size 1024] [--model NAME]

Embedded profile in a temporary directory (SQLite, kombu filesystem broker polling every
0.1 s, media, an MLflow store), as ``benchmarks/upload_to_prediction.py``: two versions of
the model with random weights (latency does not depend on them), v1 in ``production`` and v2
the ``candidate``; one worker subprocess (``-Q inference,default``, solo pool, as ``make run``
starts it). Each image is uploaded through the upload URL with Django's test client, then the
production prediction row is watched every 20 ms and the status partial fetched once it is
done ("visible").

The arms alternate in blocks of ``--block`` uploads (off, on, off, on, ...), so both see the
same machine over the run (the box is shared). Before each block the worker is left to finish
every queued prediction, shadow ones included, so an off block starts on an idle worker and
an on block pays for its own shadows only. Within a block the next upload starts ``--gap``
seconds after the previous result was visible: 0 (the default) is the worst case for the
shadow, the next production upload arriving while the previous study's shadow still runs
on the one worker; a reader-paced gap (e.g. 1 s) is closer to a reading room.

Prints p50 / p95 per arm and the on/off ratio of each. Target (issue 11): p95 ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks.upload_to_prediction import _image, _percentile, _setup, _start_worker  # noqa: E402


def _register(model_name: str, *, seed: int, alias: str) -> str:
    """Log ``model_name`` with random weights (``seed``) and give it ``alias``."""
    import mlflow
    import torch
    from django.conf import settings

    from mlcore.ml import tracking
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.models import build_model
    from mlcore.ml.transforms import PreprocessConfig
    from mlcore.services.registry import registry_sync

    torch.manual_seed(seed)
    model = build_model(model_name)
    size = int(model.default_cfg["img_size"])
    bundle = ModelBundle(model_name=model_name, state_dict=model.state_dict(),
                         preprocess=PreprocessConfig(image_size=size, mean=0.45, std=0.25),
                         metadata={"purpose": "benchmark: random weights"})
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = bundle.save(Path(tmp) / "bundle")
        with tracking.start_run(experiment="radviewer-benchmarks", run_name=f"{model_name}-{seed}",
                                log_system_metrics=False):
            mlflow.log_param("model_name", model_name)
            _, version = tracking.log_model_bundle(
                bundle_dir, image_size=size, class_keys=list(bundle.class_keys),
                preprocess=bundle.preprocess.to_dict(), temperature=1.0,
                registered_model_name=settings.MLFLOW_REGISTERED_MODEL,
            )
    tracking.set_alias(settings.MLFLOW_REGISTERED_MODEL, alias, version)
    registry_sync(name=settings.MLFLOW_REGISTERED_MODEL)
    return version


def _idle(timeout: float = 120.0) -> None:
    """Wait until the worker has finished every prediction (shadow ones included)."""
    from clinical.models import Prediction

    deadline = time.monotonic() + timeout
    while Prediction.objects.filter(status__in=["queued", "running"]).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("predictions still queued or running after 120 s")
        time.sleep(0.02)


def _one(client, seed: int, size: int) -> float:
    """Upload one PNG; milliseconds until its production result is shown."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clinical.models import Image

    data = _image(seed, size)
    start = time.perf_counter()
    response = client.post("/upload/file/", {"file": SimpleUploadedFile(f"s{seed}.png", data)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 201, response.content[:500]
    image = Image.objects.select_related("study").get(original_name=f"s{seed}.png")
    shown = image.predictions.exclude(arm="shadow").filter(status__in=["succeeded", "failed"])
    while not shown.exists():
        if time.perf_counter() - start > 120:
            raise TimeoutError("no prediction within 120 s")
        time.sleep(0.02)
    body = client.get(f"/studies/{image.study.uid}/status/?image={image.pk}", HTTP_HX_REQUEST="true").content.decode()
    visible = time.perf_counter()
    if 'class="probabilities"' not in body:
        raise RuntimeError(f"prediction failed or not shown: {body[:2000]}")
    return (visible - start) * 1e3


def main() -> None:
    from mlcore.ml.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-arm", type=int, default=40, help="uploads per arm")
    parser.add_argument("--block", type=int, default=5, help="uploads per block (arms alternate by block)")
    parser.add_argument("--gap", type=float, default=0.0,
                        help="seconds between a result becoming visible and the next upload in a block")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=1024, help="side of the uploaded PNG in pixels")
    args = parser.parse_args()
    if args.per_arm < 1 or args.block < 1 or args.per_arm % args.block:
        parser.error("--per-arm must be a positive multiple of --block")
    with tempfile.TemporaryDirectory(prefix="rv-bench-shadow-") as tmp:
        _setup(tmp, None)
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.test import Client

        from clinical.models import Prediction
        from mlcore.services.rollout import rollout_policy_update
        from radviewer.accounts.roles import ML_ADMIN, RADIOLOGIST
        from radviewer.accounts.services import roles_sync

        name = settings.MLFLOW_REGISTERED_MODEL
        production = _register(args.model, seed=0, alias="production")
        candidate = _register(args.model, seed=1, alias="candidate")
        roles_sync()
        reader = get_user_model().objects.create_user(username="bench")  # no password: force_login
        reader.groups.add(Group.objects.get(name=RADIOLOGIST))
        admin = get_user_model().objects.create_user(username="bench-admin")
        admin.groups.add(Group.objects.get(name=ML_ADMIN))
        client = Client()
        client.force_login(reader)

        # Blinded reads (3 % by default) hide the AI this benchmark waits for: none here.
        from mlcore.services.blinding import blinded_share_set

        blinded_share_set(actor=admin, value=0, name=name)

        def shadow(on: bool) -> None:
            rollout_policy_update(name=name, actor=admin, shadow_candidate=on, reason="benchmark arm")

        worker = _start_worker(tmp, Path(tmp) / "worker.log")
        times: dict[str, list[float]] = {"off": [], "on": []}
        seed = 0
        try:
            shadow(True)  # warm-up: the worker loads both versions
            for _ in range(2):
                seed += 1
                _one(client, seed, args.size)
            _idle()
            blocks = 2 * args.per_arm // args.block
            for b in range(blocks):
                arm = "off" if b % 2 == 0 else "on"
                _idle()
                shadow(arm == "on")
                for _ in range(args.block):
                    seed += 1
                    times[arm].append(_one(client, seed, args.size))
                    if args.gap:
                        time.sleep(args.gap)
            _idle()
            shadows = Prediction.objects.filter(arm="shadow")
            done = shadows.filter(status="succeeded").count()
        except Exception:
            print((Path(tmp) / "worker.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    expected = args.per_arm + 2
    print(f"Production upload -> result visible, shadow off vs on, {args.per_arm} uploads per arm in blocks of "
          f"{args.block} (arms alternating), gap {args.gap:g} s after each result, {args.size}x{args.size} PNG, "
          f"model {args.model} (random weights) v{production} production, v{candidate} candidate in shadow, "
          f"embedded profile, one solo worker (-Q inference,default).\n")
    print(f"Shadow predictions finished: {done} of {expected} (every on-arm and warm-up study).\n")
    print("| arm | n | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|")
    for arm in ("off", "on"):
        v = times[arm]
        print(f"| shadow {arm} | {len(v)} | {statistics.median(v):.0f} | {_percentile(v, 95):.0f} |")
    p50 = statistics.median(times["on"]) / statistics.median(times["off"])
    p95 = _percentile(times["on"], 95) / _percentile(times["off"], 95)
    print(f"\nratio on/off: p50 {p50:.2f}, p95 {p95:.2f} (target p95 <= 1.1: {'met' if p95 <= 1.1 else 'NOT met'})")


if __name__ == "__main__":
    main()
