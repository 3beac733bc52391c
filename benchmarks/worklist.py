"""Server time and query count of the worklist page with 10,000 studies.

    python benchmarks/worklist.py [--studies 10000] [--repeats 20]

Builds a throw-away SQLite database (embedded profile) in a temporary directory, fills it
with ``bulk_create`` (one image and one finished prediction per study, received over the
last two days so some studies are escalated), then renders the worklist through Django's
test client: the first page, a later page, a filtered page and the htmx table partial.
Prints a markdown table (median / p95 server time, queries per request).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def _setup(var_dir: str) -> None:
    os.environ["RADVIEWER_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "radviewer.settings.base"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's "testserver" host
    call_command("migrate", verbosity=0, interactive=False)


def _fill(n: int, seed: int = 0) -> None:
    from django.db import connection, transaction

    from clinical.models import Image, Prediction, Study
    from mlcore.ml.classes import CLASS_KEYS, URGENT_KEYS

    rng = random.Random(seed)
    statuses = ["awaiting_review"] * 70 + ["reviewed"] * 10 + ["processing"] * 5 + ["failed"] * 2 + ["signed_off"] * 13
    with transaction.atomic():
        studies = []
        for i in range(n):
            top = rng.choice(CLASS_KEYS)
            oos = rng.random() < 0.03
            studies.append(Study(
                uid=f"2.25.{10**20 + i}", modality="OPT" if "oct" in top else rng.choice(["CR", "DX", "OT"]),
                status=rng.choice(statuses), top_class=top, out_of_scope=oos,
                triage_priority=1.0 if oos else round(rng.random() * (1.0 if top in URGENT_KEYS else 0.4), 4),
            ))
        Study.objects.bulk_create(studies, batch_size=2000)
        ids = list(Study.objects.order_by("id").values_list("id", "top_class"))
        images = [
            Image(study_id=sid, file=f"images/{sid}.png", display_file=f"display/{sid}.png",
                  original_name=f"{sid}.png", format="png", width=512, height=512,
                  sha256=f"{sid:064x}", size_bytes=1000)
            for sid, _ in ids
        ]
        Image.objects.bulk_create(images, batch_size=2000)
        image_ids = dict(Image.objects.values_list("study_id", "id"))
        predictions = [
            Prediction(image_id=image_ids[sid], model_name="radviewer-triage", model_version="1",
                       status="succeeded", top_class=top, confidence=round(rng.uniform(0.3, 0.99), 3),
                       probabilities={top: 0.5})
            for sid, top in ids
        ]
        Prediction.objects.bulk_create(predictions, batch_size=2000)
        with connection.cursor() as cur:  # received over the last two days (auto_now_add ignores values)
            cur.execute("UPDATE clinical_study SET received_at = datetime('now', '-' || ((id * 7919) % 2880) || ' minutes')")
            cur.execute("UPDATE clinical_study SET signed_off_at = received_at WHERE status = 'signed_off'")
        cur = connection.cursor()
        cur.execute("ANALYZE")


def _user():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from radviewer.accounts.roles import RADIOLOGIST
    from radviewer.accounts.services import roles_sync

    roles_sync()
    user = get_user_model().objects.create_user(username="bench")  # no password: force_login
    user.groups.add(Group.objects.get(name=RADIOLOGIST))
    return user


def _measure(client, url: str, params: dict, repeats: int, htmx: bool = False) -> tuple[float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    client.get(url, params, **headers)  # warm-up (template compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url, params, **headers)
        times.append((time.perf_counter() - start) * 1e3)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params, **headers)
    rows = response.content.decode().count("data-uid=")
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(ctx.captured_queries), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rv-bench-worklist-") as tmp:
        _setup(tmp)
        from django.test import Client

        start = time.perf_counter()
        _fill(args.studies)
        fill_s = time.perf_counter() - start
        client = Client()
        client.force_login(_user())
        cases = [
            ("first page (50 rows)", {}, False),
            ("page 40", {"page": 40}, False),
            ("filtered: DX, urgent class", {"modality": "DX", "predicted_class": "lung-covid"}, False),
            ("htmx table partial (10 s refresh)", {}, True),
            ("Done tab", {"done": "1"}, False),
        ]
        print(f"Worklist with {args.studies} studies (SQLite, filled in {fill_s:.1f} s); "
              f"{args.repeats} requests each, Django test client, server time incl. template rendering.\n")
        print("| request | median ms | p95 ms | queries | rows |")
        print("|---|---|---|---|---|")
        for label, params, htmx in cases:
            median, p95, queries, rows = _measure(client, "/worklist/", params, args.repeats, htmx)
            print(f"| {label} | {median:.1f} | {p95:.1f} | {queries} | {rows} |")
        print("\nQueries include 4 for session, user and permissions; the worklist itself is "
              "3 (count, page, image counts with top-class probabilities).")


if __name__ == "__main__":
    main()
