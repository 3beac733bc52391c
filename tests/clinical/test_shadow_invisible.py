"""A shadow prediction is never seen by readers (issue 11, DESIGN.md section 7); the API
surfaces are in tests/clinical/api/test_shadow_invisible_api.py.

Two real registered versions: v1 in production, v2 the candidate in shadow. Each study is
triaged by v1, then v2 runs in shadow on the same image (both through the real task). The
shadow row is then given an unmistakable result (an urgent class at 98.7 %) so that any
surface leaking it would show it; every reader and API surface is checked for it.
"""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from clinical.models import Prediction, Study
from clinical.selectors.worklist import WorklistFilters, worklist, worklist_row_details
from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from tests.clinical.factories import chest_png
from tests.support.registry import registry_fixture  # noqa: F401 (the `registry` fixture)
from tests.support.rollout import MARK_P, MARK_TEXT, mark, shadow_fixture, triage_with_shadow  # noqa: F401

pytestmark = pytest.mark.django_db

@pytest.fixture
def uploaded(shadow, radiologist):
    outcome = image_ingest(data=chest_png(seed=71), filename="chest.png", actor=radiologist)
    production, shadow_p = triage_with_shadow(outcome.study.uid)
    mark(shadow_p, production)
    return outcome.study, outcome.image, production, shadow_p


def test_viewer_shows_production_only(uploaded, radiologist_client):
    study, image, production, shadow_p = uploaded
    body = radiologist_client.get(f"/studies/{study.uid}/").content.decode()
    assert 'class="model-version">1<' in body and 'class="model-version">2<' not in body
    assert MARK_TEXT not in body and "shadow" not in body.lower()
    heat = radiologist_client.get(f"/studies/{study.uid}/images/{image.pk}/heatmap.png")
    with default_storage.open(production.heatmap_png.name, "rb") as fh:
        assert b"".join(heat.streaming_content) == fh.read()
    assert production.heatmap_png.name != shadow_p.heatmap_png.name


def test_study_fields_and_worklist_order_ignore_the_shadow(shadow, radiologist, radiologist_client):
    studies = []
    for seed in (81, 82, 83):
        outcome = image_ingest(data=chest_png(seed=seed), filename=f"w{seed}.png", actor=radiologist)
        production = Prediction.objects.get(image=outcome.image)
        run_prediction(prediction_id=production.pk)
        studies.append(outcome.study.uid)
    order_before = list(worklist(filters=WorklistFilters()).values_list("uid", flat=True))
    fields_before = {s.uid: (s.status, s.top_class, s.triage_priority, s.out_of_scope)
                     for s in Study.objects.all()}
    # The least urgent study gets a shadow that calls it urgent at 98.7 %.
    last = order_before[-1]
    shadow_p = Prediction.objects.get(image__study__uid=last, arm="shadow")
    run_prediction(prediction_id=shadow_p.pk)
    shadow_p.refresh_from_db()
    mark(shadow_p, Prediction.objects.get(image__study__uid=last, arm="production"))
    assert list(worklist(filters=WorklistFilters()).values_list("uid", flat=True)) == order_before
    assert {s.uid: (s.status, s.top_class, s.triage_priority, s.out_of_scope)
            for s in Study.objects.all()} == fields_before
    details = worklist_row_details(study_ids=Study.objects.values_list("pk", flat=True))
    assert all(d.top_probability != pytest.approx(MARK_P) for d in details.values())
    page = radiologist_client.get("/worklist/").content.decode()
    assert MARK_TEXT not in page and all(uid in page for uid in studies)
    assert radiologist_client.get(f"/worklist/?predicted_class={shadow_p.top_class}").content.decode().count(
        f"/studies/{last}/") == (1 if fields_before[last][1] == shadow_p.top_class else 0)


def test_provenance_hides_the_shadow_from_readers_and_shows_it_to_ml_admins(uploaded, radiologist_client,
                                                                            client, ml_admin):
    study = uploaded[0]
    reader_rows = radiologist_client.get(f"/studies/{study.uid}/provenance").content.decode().split("<tbody>")[1]
    assert "shadow" not in reader_rows.lower()
    client.force_login(ml_admin)
    admin_rows = client.get(f"/studies/{study.uid}/provenance").content.decode().split("<tbody>")[1]
    assert "shadow" in admin_rows.lower()
