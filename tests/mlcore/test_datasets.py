"""The data page and dataset imports, end to end through the URLs, the task and the CLI.

Trees are built here with PIL in the real-cxr layout (class-key folders, a manifest.csv with
its columns, a README beside them); no real image enters the repository.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from mlcore.ml.data import open_store
from mlcore.models import DatasetVersion
from mlcore.selectors.data import dataset_overview, dataset_versions
from mlcore.services.dataset_imports import dataset_import_request, dataset_import_run
from mlcore.services.datasets import dataset_version_ensure_current, dataset_version_register
from mlcore.services.feedback import feedback_sample_add
from radviewer.audit.models import AuditEvent
from radviewer.lib.tasks import route_task, task_by_name
from tests.ml.conftest import s3_client, s3_endpoint, texture  # noqa: F401  (moto's S3 server fixtures)

pytestmark = pytest.mark.django_db

MANIFEST_HEADER = ["file", "class", "source_repo", "source_path", "source_commit", "original_dataset",
                   "patient_id", "license_note"]


@pytest.fixture
def var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.DATASET_STORE_URI = str(tmp_path / "var" / "datasets" / "current")
    return settings.VAR_DIR


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def real_cxr_tree(root: Path, *, per_class: int = 10, broken: bool = True, duplicate: bool = True) -> Path:
    """``<class-key>/<name>.png`` + real-cxr's manifest columns; patients of two images each,
    one unreadable file and one pixel copy under another name when asked."""
    records = []
    seed = 1000
    for cls, dataset in (("lung-normal", "NIH ChestX-ray14 No Finding"),
                         ("lung-covid", "ieee8023 covid-chestxray-dataset [patient_id inferred by filename]")):
        for n in range(per_class):
            rel = f"{cls}/Some_Repo__{n:04d}__{seed:08x}.png"
            (root / cls).mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(_png(texture(seed)))
            records.append([rel, cls, "someone/repo", f"imgs/{n}.jpg", "abc123", dataset,
                            f"{cls}-p{n // 2}", "CC BY 4.0"])
            seed += 1
    if broken:
        (root / "lung-normal" / "Broken__0001__deadbeef.png").write_text("not an image\n")
    if duplicate:
        first = records[0][0]
        (root / "lung-normal" / "Copy__0001__feedface.png").write_bytes((root / first).read_bytes())
    (root / "README.md").write_text("# a small real-cxr-like tree\n")
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(records)
    return root


def _form(source, slug="hospital-a", source_format="plain", kind="training", seed="42"):
    return {"source_path": str(source), "source_format": source_format, "slug": slug, "kind": kind,
            "seed": seed}


# --- import through the URL -----------------------------------------------------------------


def test_import_form_queues_then_the_task_imports_with_a_report(
    var, tmp_path, ml_admin_client, ml_admin, django_capture_on_commit_callbacks, monkeypatch
):
    tree = real_cxr_tree(tmp_path / "real-mini")
    with django_capture_on_commit_callbacks() as callbacks:
        response = ml_admin_client.post(reverse("mlcore:data"), _form(tree))
    assert response.status_code == 302
    dataset = DatasetVersion.objects.get(slug="hospital-a")
    assert dataset.status == "queued" and dataset.created_by == ml_admin
    assert dataset.store_uri == (var / "datasets" / "hospital-a").resolve().as_uri()
    assert dataset.progress_total == 22  # 20 images, the unreadable file, the copy
    assert AuditEvent.objects.filter(action="dataset.import_requested", actor=ml_admin).exists()
    assert len(callbacks) == 1
    assert route_task("mlcore.dataset_import", (), {}, {}) == {"queue": "training"}

    # What the worker does with the message: the declared task runs the import.
    from radviewer.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    callbacks[0]()

    dataset.refresh_from_db()
    assert dataset.status == "ready", dataset.failure_reason
    assert dataset.progress_done == dataset.progress_total == 22
    assert dataset.finished_at is not None and dataset.heartbeat_at is not None
    store = open_store(dataset.store_uri)
    assert dataset.manifest_hash == store.manifest_hash()
    report = dataset.report
    assert report["total"] == 20
    skipped = dict(map(tuple, report["skipped"]))
    assert list(skipped) == ["lung-normal/Broken__0001__deadbeef.png"]
    assert "not a recognised image format" in skipped["lung-normal/Broken__0001__deadbeef.png"]
    dropped = dict(map(tuple, report["dropped"]))
    assert "exact duplicate of" in dropped["lung-normal/Copy__0001__feedface.png"]
    assert report["patients_shared_between_splits"] == 0
    assert AuditEvent.objects.filter(action="dataset.imported", object_id=str(dataset.pk)).exists()

    page = ml_admin_client.get(reverse("mlcore:data")).content.decode()
    assert "hospital-a" in page and "1 file skipped" in page
    assert "Broken__0001__deadbeef.png" in page and "not a recognised image format" in page
    assert dataset.manifest_hash[:12] in page and "hx-trigger" not in page  # nothing running


def test_queued_import_is_polled_through_the_htmx_partial(var, tmp_path, ml_admin_client):
    tree = real_cxr_tree(tmp_path / "t", per_class=2, broken=False, duplicate=False)
    ml_admin_client.post(reverse("mlcore:data"), _form(tree, slug="polled"))
    full = ml_admin_client.get(reverse("mlcore:data")).content.decode()
    assert 'hx-trigger="every 2s"' in full and "<progress" in full and "Queued" in full
    partial = ml_admin_client.get(reverse("mlcore:data"), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="dataset-versions"' in partial and "<html" not in partial and "polled" in partial
    # the version's own page polls its status and asks for a full reload once it is done
    detail = ml_admin_client.get(reverse("mlcore:dataset", args=["polled"]), HTTP_HX_REQUEST="true")
    assert 'id="import-status"' in detail.content.decode() and 'every 2s' in detail.content.decode()
    dataset_import_run(dataset_id=DatasetVersion.objects.get(slug="polled").pk)
    done = ml_admin_client.get(reverse("mlcore:dataset", args=["polled"]), HTTP_HX_REQUEST="true")
    assert done.headers.get("HX-Refresh") == "true"


def test_progress_reaches_the_row_at_most_about_once_a_second(var, tmp_path, ml_admin):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tree = real_cxr_tree(tmp_path / "t", per_class=15)  # 32 files, 30 kept
    dataset = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="throttled", enqueue=False)
    calls = []
    with CaptureQueriesContext(connection) as ctx:
        dataset = dataset_import_run(dataset_id=dataset.pk, progress=lambda *a: calls.append(a))
    assert calls[-1] == ("write", 30, 30) and len(calls) == 32 + 30
    progress_writes = [q for q in ctx.captured_queries
                       if q["sql"].startswith("UPDATE") and "progress_done" in q["sql"]]
    # one per second at most, plus the end of each stage and the final save: not one per file
    assert 2 <= len(progress_writes) <= 6
    assert dataset.progress_done == dataset.progress_total == 32


def test_evaluation_only_import_puts_every_image_in_final_eval(var, tmp_path, ml_admin_client):
    tree = real_cxr_tree(tmp_path / "hospital", per_class=6, broken=False)
    ml_admin_client.post(reverse("mlcore:data"), _form(tree, slug="hospital-eval", kind="evaluation"))
    dataset = dataset_import_run(dataset_id=DatasetVersion.objects.get(slug="hospital-eval").pk)
    assert dataset.status == "ready" and dataset.kind == "evaluation"
    rows = open_store(dataset.store_uri).manifest()
    assert len(rows) == 12 and {r.split for r in rows} == {"final_eval"}
    assert dataset.report["totals"]["final_eval"] == 12 and dataset.report["totals"]["train"] == 0
    page = ml_admin_client.get(reverse("mlcore:data")).content.decode()
    assert "evaluation only" in page
    assert [d.slug for d in dataset_versions(kind="evaluation", ready_only=True)] == ["hospital-eval"]
    assert "hospital-eval" not in [d.slug for d in dataset_versions(kind="training")]


def test_a_run_that_fails_is_failed_with_the_reason(var, tmp_path, ml_admin):
    tree = real_cxr_tree(tmp_path / "vanishing", per_class=2, broken=False, duplicate=False)
    dataset = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="vanishing", enqueue=False)
    for png in tree.glob("*/*.png"):  # the folder lost its images before the worker got there
        png.unlink()
    dataset = dataset_import_run(dataset_id=dataset.pk)
    assert dataset.status == "failed"
    assert "none of the 4 files could be imported" in dataset.failure_reason
    assert "file not found" in dataset.failure_reason
    assert AuditEvent.objects.filter(action="dataset.import_failed", object_id=str(dataset.pk)).exists()
    assert dataset_import_run(dataset_id=dataset.pk).status == "failed"  # a redelivery does nothing


def test_an_import_whose_worker_died_is_failed_not_importing_forever(var, tmp_path, ml_admin, ml_admin_client):
    from datetime import timedelta

    from django.utils import timezone

    tree = real_cxr_tree(tmp_path / "t", per_class=2, broken=False, duplicate=False)
    dataset = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="orphan", enqueue=False)
    DatasetVersion.objects.filter(pk=dataset.pk).update(  # as a killed worker leaves it
        status="importing", heartbeat_at=timezone.now() - timedelta(minutes=16))
    waiting = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="waiting", enqueue=False)
    # The beat reaper (every minute) fails it; opening the page changes nothing by itself.
    ml_admin_client.get(reverse("mlcore:data"))
    assert DatasetVersion.objects.get(pk=dataset.pk).status == "importing"
    task_by_name("mlcore.stale_work_reap").apply()
    page = ml_admin_client.get(reverse("mlcore:data")).content.decode()
    dataset.refresh_from_db()
    assert dataset.status == "failed" and "stopped reporting progress" in dataset.failure_reason
    assert "stopped reporting progress" in page
    assert DatasetVersion.objects.get(pk=waiting.pk).status == "queued"  # queued work may wait
    # the redelivered message finds it failed; an import under the same name starts over
    assert dataset_import_run(dataset_id=dataset.pk).status == "failed"
    again = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                   slug="orphan", enqueue=False)
    assert dataset_import_run(dataset_id=again.pk).status == "ready"


# --- bad input --------------------------------------------------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    good = real_cxr_tree(tmp_path / "good", per_class=2, broken=False, duplicate=False)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    empty = tmp_path / "empty"
    (empty / "lung-normal").mkdir(parents=True)
    wrong_layout = tmp_path / "wrong"
    (wrong_layout / "Cats").mkdir(parents=True)
    return {
        "missing": (_form(tmp_path / "nowhere"), "there is no folder"),
        "file": (_form(a_file), "is a file, not a folder"),
        "unknown format": (_form(good, source_format="dicom-zip"), "Select a valid choice"),
        "empty": (_form(empty), "holds no images"),
        "wrong layout": (_form(wrong_layout), "unknown folder(s) &#x27;Cats&#x27;"),
        "bad slug": (_form(good, slug="Not A Slug!"), "slug"),
    }


@pytest.mark.parametrize("case", ["missing", "file", "unknown format", "empty", "wrong layout", "bad slug"])
def test_bad_import_input_is_a_clear_400_and_no_row(var, tmp_path, ml_admin_client, case):
    form, message = _bad_inputs(tmp_path)[case]
    ml_admin_client.get(reverse("mlcore:data"))  # registers the app's own store, "current"
    before = set(DatasetVersion.objects.values_list("slug", flat=True))
    response = ml_admin_client.post(reverse("mlcore:data"), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert set(DatasetVersion.objects.values_list("slug", flat=True)) == before
    assert not AuditEvent.objects.filter(action="dataset.import_requested").exists()


def test_duplicate_slug_is_refused_and_the_first_import_untouched(var, tmp_path, ml_admin_client, ml_admin):
    tree = real_cxr_tree(tmp_path / "t", per_class=2, broken=False, duplicate=False)
    first = dataset_import_run(dataset_id=dataset_import_request(
        actor=ml_admin, source_path=tree, source_format="plain", slug="taken", enqueue=False).pk)
    response = ml_admin_client.post(reverse("mlcore:data"), _form(tree, slug="taken"))
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    again = DatasetVersion.objects.get(slug="taken")
    assert (again.status, again.manifest_hash) == ("ready", first.manifest_hash)
    assert AuditEvent.objects.filter(action="dataset.import_requested").count() == 1


def test_unknown_format_is_refused_by_the_service_too(var, tmp_path, ml_admin):
    tree = real_cxr_tree(tmp_path / "t", per_class=1, broken=False, duplicate=False)
    with pytest.raises(ValidationError, match="unknown format 'dicom-zip'"):
        dataset_import_request(actor=ml_admin, source_path=tree, source_format="dicom-zip", slug="x")
    assert not DatasetVersion.objects.exists()


def test_a_failed_import_may_be_retried_under_its_slug(var, tmp_path, ml_admin):
    tree = real_cxr_tree(tmp_path / "t", per_class=2, broken=False, duplicate=False)
    dataset = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="retry", enqueue=False)
    moved = tmp_path / "moved"
    tree.rename(moved)
    assert dataset_import_run(dataset_id=dataset.pk).status == "failed"
    retried = dataset_import_request(actor=ml_admin, source_path=moved, source_format="plain",
                                     slug="retry", enqueue=False)
    assert retried.pk == dataset.pk and retried.status == "queued" and not retried.failure_reason
    assert dataset_import_run(dataset_id=retried.pk).status == "ready"


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_import_goes_through_the_services(var, tmp_path):
    tree = real_cxr_tree(tmp_path / "real-mini", per_class=4)
    out = io.StringIO()
    call_command("import_dataset", str(tree), "--format", "plain", "--slug", "cli-eval",
                 "--evaluation-only", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    dataset = DatasetVersion.objects.get(slug="cli-eval")
    assert dataset.status == "ready" and dataset.kind == "evaluation"
    assert "| final_eval |" in text and "skipped (unreadable): 1" in text
    assert dataset.manifest_hash in text
    assert {r.split for r in open_store(dataset.store_uri).manifest()} == {"final_eval"}
    event = AuditEvent.objects.get(action="dataset.import_requested")
    assert event.actor_label == "cli:import_dataset"
    with pytest.raises(CommandError, match="already exists"):
        call_command("import_dataset", str(tree), "--format", "plain", "--slug", "cli-eval",
                     stdout=io.StringIO(), stderr=io.StringIO())


def test_cli_import_without_slug_fills_the_current_store(var, tmp_path):
    tree = real_cxr_tree(tmp_path / "real-mini", per_class=4, broken=False, duplicate=False)
    dataset_version_ensure_current()  # registered while still empty, as the console does
    call_command("import_dataset", str(tree), "--format", "plain", stdout=io.StringIO(),
                 stderr=io.StringIO())
    current = DatasetVersion.objects.get(slug="current")
    assert current.status == "ready" and current.report["total"] == 8
    assert current.store_uri == Path(var / "datasets" / "current").resolve().as_uri()


# --- registering existing stores ---------------------------------------------------------------


def test_register_is_idempotent_on_the_store(var, tmp_path, ml_admin):
    tree = real_cxr_tree(tmp_path / "t", per_class=2, broken=False, duplicate=False)
    store_path = tmp_path / "elsewhere"
    call_command("import_dataset", str(tree), "--format", "plain", "--dest", str(store_path),
                 stdout=io.StringIO(), stderr=io.StringIO())
    row = DatasetVersion.objects.get(slug="elsewhere")
    again = dataset_version_register(store_uri=str(store_path), slug="another-name", actor=ml_admin)
    assert again.pk == row.pk and again.slug == "elsewhere"
    first = dataset_version_ensure_current()
    assert dataset_version_ensure_current().pk == first.pk
    assert AuditEvent.objects.filter(action="dataset.registered").count() == 1
    assert first.slug == "current" and first.report["total"] == 0


def test_current_follows_the_configured_store(var, settings, tmp_path):
    old = dataset_version_ensure_current()
    settings.DATASET_STORE_URI = str(tmp_path / "moved-store")
    new = dataset_version_ensure_current()
    assert new.pk != old.pk and new.slug.startswith("current-")
    assert new.store_uri == (tmp_path / "moved-store").resolve().as_uri()
    assert DatasetVersion.objects.get(pk=old.pk).slug == "current"


# --- integrity, sources, samples, feedback --------------------------------------------------


def _imported(var, tmp_path, ml_admin, slug="clean", per_class=10):
    tree = real_cxr_tree(tmp_path / slug, per_class=per_class, broken=False, duplicate=False)
    return dataset_import_run(dataset_id=dataset_import_request(
        actor=ml_admin, source_path=tree, source_format="plain", slug=slug, enqueue=False).pk)


def test_integrity_reads_zero_on_a_clean_import_and_counts_planted_leaks(var, tmp_path, ml_admin,
                                                                        ml_admin_client):
    dataset = _imported(var, tmp_path, ml_admin)
    clean = dataset_overview(dataset=dataset)
    assert clean.total == 20 and len(clean.splits) > 1
    assert (clean.patients_shared, clean.near_duplicates_across_splits) == (0, 0)
    page = ml_admin_client.get(reverse("mlcore:dataset", args=["clean"])).content.decode()
    assert '<strong id="patients-shared">0</strong>' in page
    assert '<strong id="near-duplicates">0</strong>' in page

    store = open_store(dataset.store_uri)
    train = next(r for r in store.rows("train"))
    namespace = train.patient_key.split(":", 1)[0]
    # a slightly brightened copy of a train image in test, as a new patient
    brighter = np.clip(store.read_image(train).astype(int) + 6, 0, 255).astype(np.uint8)
    store.add_sample(split="test", class_key=train.class_key, data=_png(brighter),
                     patient_key="new-person", source=namespace)
    # a different image of the same train patient in val
    store.add_sample(split="val", class_key=train.class_key, data=_png(texture(5555)),
                     patient_key=train.patient_key, source=namespace)

    leaky = dataset_overview(dataset=dataset)
    assert leaky.manifest_hash != clean.manifest_hash  # a new key, not the cached figures
    assert leaky.shared_patients == [train.patient_key]
    [pair] = leaky.near_duplicates
    assert {pair.split_a, pair.split_b} == {"train", "test"} and train.path in (pair.path_a, pair.path_b)
    assert pair.distance <= 12
    page = ml_admin_client.get(reverse("mlcore:dataset", args=["clean"])).content.decode()
    assert '<strong id="patients-shared">1</strong>' in page
    assert '<strong id="near-duplicates">1</strong>' in page and "leak" in page


def test_dataset_page_shows_counts_chart_sources_and_samples(var, tmp_path, ml_admin, ml_admin_client):
    dataset = _imported(var, tmp_path, ml_admin, slug="shown")
    overview = dataset_overview(dataset=dataset)
    assert overview.sources == {
        "lung-covid": {"ieee8023 covid-chestxray-dataset": 10},
        "lung-normal": {"NIH ChestX-ray14 No Finding": 10},
    }
    assert sum(overview.counts[s]["lung-covid"] for s in overview.splits) == 10
    again = dataset_overview(dataset=dataset)
    assert again.samples == overview.samples  # deterministic
    response = ml_admin_client.get(reverse("mlcore:dataset", args=["shown"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and "COVID-19 pneumonia" in page and "No finding (CXR)" in page
    assert "NIH ChestX-ray14 No Finding: 10" in page
    some_path = overview.samples["lung-covid"][overview.splits[0]][0]
    thumb = f"{reverse('mlcore:dataset_image', args=['shown'])}?path={some_path}&amp;size=96"
    assert thumb in page
    served = ml_admin_client.get(reverse("mlcore:dataset_image", args=["shown"]),
                                 {"path": some_path, "size": "96"})
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    for not_an_image in ("manifest.csv", "build_report.json", "../../etc/passwd", "train/lung-covid/nope.png"):
        assert ml_admin_client.get(reverse("mlcore:dataset_image", args=["shown"]),
                                   {"path": not_an_image}).status_code == 404


def test_feedback_growth_per_day_and_class_with_lineage(var, ml_admin_client):
    samples = [
        (1, "lung-covid", "2026-11-30T09:15:00+00:00", "dr_house", "3"),
        (2, "lung-covid", "2026-11-30T16:40:00+00:00", "dr_wilson", "3"),
        (3, "lung-normal", "2026-12-02T08:05:00+00:00", "dr_house", "4"),
    ]
    for seed, cls, when, reader, version in samples:
        feedback_sample_add(
            png_bytes=_png(texture(9000 + seed)), class_key=cls, patient_key=f"pat-{seed}",
            lineage={"study": f"1.2.826.0.1.{seed}", "image_sha256": "ab" * 32, "reader": reader,
                     "model_version": version, "model_name": "radviewer-triage",
                     "verdict": "corrected", "time": when},
        )
    current = dataset_version_ensure_current()
    overview = dataset_overview(dataset=current)
    # the day between, without corrections, is on the time axis too
    assert overview.feedback_per_day == {"2026-11-30": {"lung-covid": 2}, "2026-12-01": {},
                                         "2026-12-02": {"lung-normal": 1}}
    newest = overview.lineage[0]
    assert (newest.study, newest.reader, newest.model, newest.class_key) == (
        "1.2.826.0.1.3", "dr_house", "radviewer-triage v4", "lung-normal")
    page = ml_admin_client.get(reverse("mlcore:dataset", args=["current"])).content.decode()
    assert "1.2.826.0.1.2" in page and "dr_wilson" in page and "radviewer-triage v3" in page
    listing = ml_admin_client.get(reverse("mlcore:data")).content.decode()
    assert "/ 3</td>" in listing  # the current store's feedback count, refreshed from its manifest


def test_console_data_pages_are_403_for_a_radiologist(var, tmp_path, ml_admin, radiologist_client):
    _imported(var, tmp_path, ml_admin, slug="private", per_class=1)
    for url in (reverse("mlcore:data"), reverse("mlcore:dataset", args=["private"]),
                reverse("mlcore:dataset_image", args=["private"]) + "?path=x"):
        assert radiologist_client.get(url).status_code == 403
    assert radiologist_client.post(reverse("mlcore:data"), {"slug": "x"}).status_code == 403
    assert not DatasetVersion.objects.filter(slug="x").exists()


def test_unknown_dataset_page_is_404(var, ml_admin_client):
    assert ml_admin_client.get(reverse("mlcore:dataset", args=["nope"])).status_code == 404


# --- S3 ------------------------------------------------------------------------------------------


def test_with_an_s3_store_imports_go_to_the_prefix_beside_it(var, settings, tmp_path, ml_admin, ml_admin_client,
                                                              s3_client, s3_endpoint, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # boto3 clients made without an endpoint use it
    s3_client.create_bucket(Bucket="hospital-data")
    settings.DATASET_STORE_URI = "s3://hospital-data/datasets/current"
    tree = real_cxr_tree(tmp_path / "t", per_class=3)
    dataset = dataset_import_request(actor=ml_admin, source_path=tree, source_format="plain",
                                     slug="from-ui", enqueue=False)
    assert dataset.store_uri == "s3://hospital-data/datasets/from-ui"
    dataset = dataset_import_run(dataset_id=dataset.pk)
    assert dataset.status == "ready", dataset.failure_reason
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket="hospital-data")["Contents"]}
    assert "datasets/from-ui/manifest.csv" in keys and len(keys) == 6 + 2  # images, manifest, build report
    page = ml_admin_client.get(reverse("mlcore:dataset", args=["from-ui"]))
    assert page.status_code == 200 and '<strong id="near-duplicates">0</strong>' in page.content.decode()
