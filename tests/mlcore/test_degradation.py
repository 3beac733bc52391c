"""Degradation from reader feedback: corrections from the reading UI and from the API both
become ReviewOutcome rows and count; daily agreement with Wilson intervals; the CUSUM per
version alarms on a sustained drop, exports its metrics, and the console page shows it."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinical.services.api_clients import api_client_create
from mlcore.models import ReviewOutcome
from mlcore.selectors.degradation import ALL_CLASSES, agreement_cusum, daily_agreement
from mlcore.services.pipeline import corrections_since_snapshot
from radviewer.ops.collectors import database_collector
from tests.clinical.study_rows import study_row

pytestmark = pytest.mark.django_db


def _outcomes(version: str, stream, *, start, name: str, cls: str = "lung-normal") -> None:
    rows = []
    for i, disagree in enumerate(stream):
        rows.append(ReviewOutcome(model_name=name, model_version=version, prediction_ref=f"t:{version}:{i}",
                                  predicted_class=cls, confirmed_class="lung-viral-pneumonia" if disagree else cls,
                                  verdict="corrected" if disagree else "agree"))
    ReviewOutcome.objects.bulk_create(rows)
    # one read a minute from ``start``, in the order given
    for i, row in enumerate(ReviewOutcome.objects.filter(model_version=version).order_by("pk")):
        ReviewOutcome.objects.filter(pk=row.pk).update(created_at=start + timedelta(minutes=i))


def test_ui_and_api_corrections_both_write_outcomes_and_count(radiologist_client, settings, tmp_path):
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    name = settings.MLFLOW_REGISTERED_MODEL
    ui_study = study_row(top_class="lung-normal")
    api_study = study_row(top_class="lung-normal")
    ui_image = ui_study.images.get()
    response = radiologist_client.post(reverse("clinical:review", args=[ui_study.uid, ui_image.pk]),
                                       {"verdict": "corrected", "label": "lung-viral-pneumonia"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    issued = api_client_create(name="pacs", scopes="feedback")
    type(api_study).objects.filter(pk=api_study.pk).update(api_client=issued.client)  # the PACS submitted it
    response = Client().post(f"/api/v1/studies/{api_study.uid}/feedback/",
                             json.dumps({"verdict": "corrected", "label": "lung-tuberculosis"}), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    assert response.status_code == 201, response.content
    outcomes = {o.confirmed_class: o for o in ReviewOutcome.objects.filter(model_name=name)}
    assert set(outcomes) == {"lung-viral-pneumonia", "lung-tuberculosis"}
    assert all(o.verdict == "corrected" and o.predicted_class == "lung-normal" for o in outcomes.values())
    count, since = corrections_since_snapshot(name=name)
    assert (count, since) == (2, None)  # no production version: every correction counts


def test_daily_agreement_and_wilson_intervals(settings):
    name = settings.MLFLOW_REGISTERED_MODEL
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    _outcomes("7", [0] * 8 + [1] * 2, start=today - timedelta(days=1), name=name)
    cells = {(d.predicted_class, d.day): d for d in daily_agreement(model_name=name)}
    cell = cells[("lung-normal", (today - timedelta(days=1)).date())]
    assert (cell.reads, cell.agreed, cell.rate) == (10, 8, 0.8)
    assert cell.low == pytest.approx(0.4902, abs=1e-3) and cell.high == pytest.approx(0.9433, abs=1e-3)
    assert cells[(ALL_CLASSES, cell.day)].reads == 10


def test_the_cusum_waits_for_its_baseline_then_alarms_on_a_drop_only(settings, ml_admin_client):
    settings.AGREEMENT_CUSUM_BASELINE_READS = 100
    name = settings.MLFLOW_REGISTERED_MODEL
    rng = np.random.default_rng(8)
    start = timezone.now() - timedelta(days=2)
    stable = (rng.random(400) < 0.15).astype(int)
    dropped = np.concatenate([(rng.random(200) < 0.15), (rng.random(250) < 0.30)]).astype(int)
    _outcomes("1", stable, start=start, name=name)
    _outcomes("2", dropped, start=start, name=name)
    _outcomes("3", [0] * 20, start=start, name=name)
    charts = {c.model_version: c for c in agreement_cusum(model_name=name)}
    assert charts["3"].design is None and "20 of the 100 reads" in charts["3"].waiting_reason
    assert charts["2"].alarm_index is not None and charts["2"].alarm
    assert charts["2"].alarm_index >= 100  # after the change at read 200 (100 after the baseline)
    assert charts["1"].current < charts["1"].design.h
    assert 400 <= charts["2"].arl0 <= 650 and charts["2"].arl1 < 120

    database_collector.clear()
    families = {m.name: m for m in database_collector.collect()}
    alarm = {s.labels["model_version"]: s.value for s in families["radviewer_agreement_cusum_alarm"].samples}
    assert alarm == {"1": 0.0, "2": 1.0}  # version 3 has no chart yet: absent, not 0

    page = ml_admin_client.get(reverse("mlcore:monitoring"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "v2" in body and "alarm" in body and "In-control ARL" in body and "<svg" in body
    assert "style=" not in body.split("<main", 1)[-1]  # CSP: no inline styles in the page's SVGs
