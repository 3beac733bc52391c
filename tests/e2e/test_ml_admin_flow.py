"""An ML admin's loop in a real browser (issue 10): import a folder as a dataset version,
start a tiny training job from the UI and watch its progress advance, open the version
report, compare it with production, tighten the acceptance criteria, see the promotion
blocked, override it with a written reason, promote, roll back, and find both moves on the
alias timeline and in the audit log.

Debian's chromium driven by Playwright against pytest-django's live server, with a real
Celery worker on the ``training`` queue (imports, training, evaluations) and a throw-away
MLflow store (``registry``: v1 in production, v2 and v3 without an alias).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image

from mlcore.models import ChangeRecord, Evaluation, ModelAlias, ModelVersion, TrainingJob
from tests.support.browser import CHROMIUM_ARGS, log_in, watch_errors
from tests.support.browser import chromium as _chromium
from tests.support.browser import shot as _shot
from tests.support.registry import registry_fixture  # noqa: F401 (the `registry` fixture)
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLASSES = ("lung-covid", "lung-normal", "lung-opacity", "lung-viral-pneumonia")
JOB_TIMEOUT_MS = 240_000


def _folder(root):
    """Class-key folders of distinct textured PNGs (no two alike, so none is dropped as a
    near-duplicate), one patient each: the 'plain' layout a hospital folder would have."""
    rng = np.random.default_rng(7)
    for key in CLASSES:
        (root / key).mkdir(parents=True)
        for i in range(14):
            cells = rng.integers(0, 255, size=(12, 12), dtype=np.uint8)
            img = Image.fromarray(cells).resize((64, 64), Image.Resampling.NEAREST)
            img.save(root / key / f"{key}-{i:02d}.png")
    return root


def test_ml_admin_trains_compares_promotes_and_rolls_back(live_server, registry, ml_admin, tmp_path, monkeypatch):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM asserts below, Playwright's loop
    folder = _folder(tmp_path / "hospital-folder")
    slug = f"e2e-{uuid.uuid4().hex[:8]}"  # stores are immutable: a new name per run
    env = {"RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI, "RADVIEWER_TRAINING_HEARTBEAT_SECONDS": "2"}
    with WorkerProcess(queues="training", extra_env=env), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors = watch_errors(page)
        log_in(page, live_server, ml_admin.username)

        # 1. Import the folder as a training dataset version; the table follows the import.
        page.goto(live_server.url + reverse("mlcore:data"))
        page.fill("#id_source_path", str(folder))
        page.select_option("#id_source_format", "plain")
        page.fill("#id_slug", slug)
        page.select_option("#id_kind", "training")
        page.click("button:has-text('Import')")
        expect(page.locator(f"#dataset-{slug} .status")).to_have_text("Ready", timeout=JOB_TIMEOUT_MS)

        # 2. A tiny training job from the form; its progress advances without a reload.
        page.goto(live_server.url + reverse("mlcore:training_job_new"))
        page.select_option("#id_dataset_version", label=f"{slug} (Training (train/val/test/final_eval))")
        page.select_option("#id_variant", "vit-tiny-test")
        page.fill("#id_epochs", "4")
        page.fill("#id_batch_size", "16")
        page.select_option("#id_precision", "32-true")
        page.click("button:has-text('Queue training job')")
        page.wait_for_url("**/ml/training/*/")
        progress = page.locator("#training-progress")
        expect(progress).to_contain_text("epoch 1/4", timeout=JOB_TIMEOUT_MS)
        expect(progress).to_contain_text("Succeeded", timeout=JOB_TIMEOUT_MS)
        _shot(page, "ml-training-job")
        job = TrainingJob.objects.get()
        assert job.state == "succeeded" and [h["epoch"] for h in job.history] == [1, 2, 3, 4]
        version = job.model_version
        assert version == "4"  # after v1-v3 of the fixture
        # The job evaluated it on the locked set and made it the candidate through the gate.
        expect(progress).to_contain_text(f"version {version}")
        assert ModelAlias.objects.filter(alias="candidate", model_version__version=version).exists(), job.log_tail

        # 3. The version report: per-class figures with intervals and the plots.
        page.click(f"text=version {version}")
        page.wait_for_url(f"**/ml/versions/{version}/")
        expect(page.locator("h2", has_text="Report on the locked set")).to_be_visible()
        expect(page.locator("figure svg").first).to_be_visible()
        expect(page.locator("body")).to_contain_text("Per class, 95 % bootstrap intervals")
        _shot(page, "ml-version")
        # Lineage: the version that served when the job was asked for is its parent.
        assert ModelVersion.objects.get(version=version).tags["radviewer.parent_version"] == "1"
        expect(page.locator(".ev-dl")).to_contain_text("v1")

        # 4. Compare with production on the same locked set (computed by the job: instant).
        page.goto(live_server.url + reverse("mlcore:compare") + f"?a=production&b={version}&dataset={slug}")
        expect(page.locator("body")).to_contain_text("McNemar")
        expect(page.locator("body")).to_contain_text(f"Gate verdict for promoting v{version}")
        _shot(page, "ml-compare")

        # 5. Tighter acceptance criteria, then the promotion to production is blocked.
        page.goto(live_server.url + reverse("mlcore:criteria"))
        page.fill("#id_max_ece", "0.0001")
        page.click("main button:has-text('Save')")
        page.goto(live_server.url + reverse("mlcore:promote", args=[version]) + "?alias=production")
        page.fill("#id_reason", "better on the hospital's final_eval")
        page.click("button:has-text('Move alias')")
        expect(page.locator("[role=alert]")).to_contain_text("gate blocks")
        expect(page.locator(".gate-verdict")).to_contain_text("calibration (ECE)")
        _shot(page, "ml-promotion-blocked")
        assert ModelAlias.objects.get(alias="production").model_version.version == "1"

        # 6. Override with a written justification: promoted, with a change record.
        page.fill("#id_override_justification", "calibration refit scheduled; reader study next week")
        page.click("button:has-text('Move alias')")
        expect(page.locator("h1")).to_contain_text("Change record")
        expect(page.locator(".record-head")).to_contain_text("reader study next week")
        assert ModelAlias.objects.get(alias="production").model_version.version == version
        promoted = ChangeRecord.objects.get(alias="production", to_version=version)
        assert promoted.overridden and promoted.gate["passed"] is False

        # 7. One action rolls production back.
        page.goto(live_server.url + reverse("mlcore:dashboard"))
        page.fill("#rollback-reason", "readers disagree more often")
        page.click("button:has-text('Roll back')")
        expect(page.locator(".record-head")).to_contain_text("Rollback")
        assert ModelAlias.objects.get(alias="production").model_version.version == "1"

        # 8. Both moves on the alias timeline and in the audit log.
        page.goto(live_server.url + reverse("mlcore:timeline"))
        timeline = page.locator("table").last
        expect(timeline).to_contain_text("Rollback")
        expect(timeline).to_contain_text("Promotion")
        page.goto(live_server.url + reverse("audit:list"))
        for action in (
            "training_job.succeeded",
            "evaluation.completed",
            "model.gate_blocked",
            "model.gate_overridden",
            "model.alias_set",
            "model.rolled_back",
        ):
            expect(page.locator("body")).to_contain_text(action)
        _shot(page, "ml-audit")
        assert Evaluation.objects.filter(model_version__version=version, status="succeeded").exists()
        assert errors == []
        browser.close()
