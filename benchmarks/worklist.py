"""Server time and query count of the worklist page with 10,000 studies.

    python benchmarks/worklist.py [--studies 10000] [--repeats 20] [--database-url postgres://...]

Builds a throw-away SQLite database (embedded profile) in a temporary directory (or uses the
empty PostgreSQL database named by ``--database-url``), fills it with ``bulk_create`` (one
image and one finished prediction per study, received over the last two days so some studies
are escalated; pseudonym, age band, sex, body part/view, description and source filled as
ingest would), then renders the worklist through Django's test client: the first page, a
later page, a filtered page, the htmx table partial, the Done tab, every column sorted both
ways (first page and page 100) and searches by pseudonym and accession. Prints a markdown
table (median / p95 server time, queries per request).
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


def _setup(var_dir: str, database_url: str = "") -> None:
    os.environ["RADVIEWER_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "radviewer.settings.base"
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's "testserver" host
    call_command("migrate", verbosity=0, interactive=False)


def _fill(n: int, seed: int = 0) -> None:
    from django.db import connection, transaction

    from clinical.models import Image, Prediction, Study
    from clinical.services.api_clients import api_client_create
    from mlcore.ml.classes import CLASS_KEYS, URGENT_KEYS

    rng = random.Random(seed)
    clients = [api_client_create(name=f"pacs-{i}", scopes="submit").client for i in range(3)]
    descriptions = ["CHEST PA", "CHEST PA LAT", "CHEST AP PORTABLE", "DX CHEST PA", "CR CHEST AP", ""]
    statuses = ["awaiting_review"] * 70 + ["reviewed"] * 10 + ["processing"] * 5 + ["failed"] * 2 + ["signed_off"] * 13
    with transaction.atomic():
        studies = []
        for i in range(n):
            top = rng.choice(CLASS_KEYS)
            oos = rng.random() < 0.03
            modality = "OPT" if "oct" in top else rng.choice(["CR", "DX", "OT"])
            raster = modality == "OT"
            client = rng.choice([None, *clients])
            studies.append(Study(
                uid=f"2.25.{10**20 + i}", modality=modality,
                status=rng.choice(statuses), top_class=top, out_of_scope=oos,
                triage_priority=1.0 if oos else round(rng.random() * (1.0 if top in URGENT_KEYS else 0.4), 4),
                patient_key="" if raster else f"pt-{rng.getrandbits(80):020x}",
                age_band="" if raster else rng.choice(["0-17", "18-39", "40-64", "65-89", "90+"]),
                sex="" if raster else rng.choice("MFO"),
                body_part="" if raster else ("EYE" if modality == "OPT" else "CHEST"),
                view_position="" if raster or modality == "OPT" else rng.choice(["PA", "AP", "LL"]),
                description="" if raster else ("OCT MACULA" if modality == "OPT" else rng.choice(descriptions)),
                source=Study.Source.UPLOAD if client is None else rng.choice([Study.Source.API, Study.Source.DICOMWEB]),
                api_client=client, accession_number=f"RIS-{i:06d}" if client else "",
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
            if connection.vendor == "postgresql":
                cur.execute("UPDATE clinical_study SET received_at = now() - ((id * 7919) % 2880) * interval '1 minute'")
            else:
                cur.execute(
                    "UPDATE clinical_study SET received_at = datetime('now', '-' || ((id * 7919) % 2880) || ' minutes')"
                )
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
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rv-bench-worklist-") as tmp:
        _setup(tmp, args.database_url)
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
        from clinical.models import Study
        from clinical.selectors.worklist import SORTS

        for key in SORTS:
            if key in ("signed_off", "reading"):
                cases += [(f"Done tab sorted by {key}{d}", {"done": "1", "sort": f"{s}{key}"}, False)
                          for s, d in (("", ""), ("-", " desc"))]
                continue
            cases += [(f"sorted by {key}{d}", {"sort": f"{s}{key}"}, False) for s, d in (("", ""), ("-", " desc"))]
        cases.append(("sorted by age desc, page 100", {"sort": "-age", "page": 100}, False))
        cases.append(("sorted by images, page 100", {"sort": "images", "page": 100}, False))
        key = Study.objects.exclude(patient_key="").order_by("id").values_list("patient_key", flat=True)[500]
        open_studies = Study.objects.exclude(status="signed_off").order_by("id")
        accession = open_studies.exclude(accession_number="").values_list("accession_number", flat=True)[100]
        cases += [
            ("search: pseudonym short form", {"q": key[:11]}, False),
            ("search: pseudonym 4 hex digits", {"q": key[3:7]}, False),
            ("search: accession (REST, exact)", {"q": accession}, False),
            ("search: accession prefix, sorted by patient", {"q": "RIS-0001", "sort": "patient"}, False),
            ("search: unknown accession", {"q": "NO-SUCH-ACC"}, False),
        ]
        from django.db import connection

        print(f"Worklist with {args.studies} studies ({connection.vendor}, filled in {fill_s:.1f} s); "
              f"{args.repeats} requests each, Django test client, server time incl. template rendering.\n")
        print("| request | median ms | p95 ms | queries | rows |")
        print("|---|---|---|---|---|")
        for label, params, htmx in cases:
            median, p95, queries, rows = _measure(client, "/worklist/", params, args.repeats, htmx)
            print(f"| {label} | {median:.1f} | {p95:.1f} | {queries} | {rows} |")
        print("\nQueries include 4 for session, user and permissions; the worklist itself is "
              "6 (count, page, image counts with top-class probabilities, final readings, live reading claims, "
              "band counts).")


if __name__ == "__main__":
    main()
