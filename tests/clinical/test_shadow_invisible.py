"""A shadow prediction is never seen by readers or integrations (issue 11, DESIGN.md section 7).

Two real registered versions: v1 in production, v2 the candidate in shadow. Each study is
triaged by v1, then v2 runs in shadow on the same image (both through the real task). The
shadow row is then given an unmistakable result (an urgent class at 98.7 %) so that any
surface leaking it would show it; every reader and API surface is checked for it.
"""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Prediction, Study, WebhookDelivery
from clinical.selectors.worklist import WorklistFilters, worklist, worklist_row_details
from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from mlcore.ml import tracking
from mlcore.services.registry import registry_sync
from mlcore.services.rollout import rollout_policy_update
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png
from tests.support.registry import NAME, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db

MARK_P = 0.987  # "98.7 %": no random-weight prediction over four chest classes comes near it
MARK_TEXT = "98.7"


@pytest.fixture
def shadow(registry, ml_admin):
    tracking.set_alias(NAME, "candidate", "2")
    registry_sync(name=NAME)
    rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, reason="shadow v2")
    return registry


def _mark(shadow_p: Prediction, production: Prediction) -> str:
    """Give the (real, finished) shadow prediction a result no production one has."""
    cxr = ["lung-covid", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia"]
    urgent = next(k for k in cxr if k != production.top_class)
    rest = (1 - MARK_P) / 4
    shadow_p.probabilities = {k: (MARK_P if k == urgent else rest) for k in [*cxr, "lung-normal"]}
    shadow_p.top_class, shadow_p.confidence = urgent, MARK_P
    shadow_p.save()
    return urgent


def triage_with_shadow(study_uid: str) -> tuple[Prediction, Prediction]:
    """Run the production prediction (which queues the shadow), then the shadow, for real."""
    production = Prediction.objects.get(image__study__uid=study_uid, arm="production")
    run_prediction(prediction_id=production.pk)
    shadow_p = Prediction.objects.get(image__study__uid=study_uid, arm="shadow")
    run_prediction(prediction_id=shadow_p.pk)
    production.refresh_from_db()
    shadow_p.refresh_from_db()
    assert production.status == shadow_p.status == "succeeded"
    assert (production.model_version, shadow_p.model_version) == ("1", "2")
    return production, shadow_p


@pytest.fixture
def uploaded(shadow, radiologist):
    outcome = image_ingest(data=chest_png(seed=71), filename="chest.png", actor=radiologist)
    production, shadow_p = triage_with_shadow(outcome.study.uid)
    _mark(shadow_p, production)
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
    _mark(shadow_p, Prediction.objects.get(image__study__uid=last, arm="production"))
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


# --- integrations: REST JSON, FHIR, SR, heat map, webhook ----------------------------------------

@pytest.fixture
def api_study(shadow, pacs, monkeypatch, django_capture_on_commit_callbacks):
    sent: list[int] = []
    monkeypatch.setattr("clinical.tasks.deliver_webhook.apply_async",
                        lambda kwargs: sent.append(kwargs["delivery_id"]))
    data = make_cxr_dicom(rows=64, cols=64, accession="ACC-SH")
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("cxr.dcm", data)],
                                              "callback_url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 202, response.content
    body = response.json()
    production = Prediction.objects.get(image__study__uid=body["uid"], arm="production")
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=production.pk)
    assert WebhookDelivery.objects.filter(study__uid=body["uid"]).count() == 1
    shadow_p = Prediction.objects.get(image__study__uid=body["uid"], arm="shadow")
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=shadow_p.pk)
    production.refresh_from_db()
    shadow_p.refresh_from_db()
    assert shadow_p.status == "succeeded"
    _mark(shadow_p, production)
    return body, production, shadow_p, sent


def test_rest_json_names_production_only(api_study, pacs):
    body, production, _shadow_p, _ = api_study
    detail = pacs.get(body["links"]["self"])
    assert detail.status_code == 200
    images = detail.json()["images"]
    assert [i["prediction"]["model_version"] for i in images] == ["1"]
    assert images[0]["prediction"]["top_class"] == production.top_class
    assert "shadow" not in detail.content.decode() and str(MARK_P) not in detail.content.decode()
    listing = pacs.get("/api/v1/studies/").content.decode()
    assert "shadow" not in listing and str(MARK_P) not in listing
    heat = pacs.get(images[0]["links"]["heatmap"])
    with default_storage.open(production.heatmap_png.name, "rb") as fh:
        assert b"".join(heat.streaming_content) == fh.read()


def test_fhir_report_names_production_only(api_study, pacs):
    body, _production, _shadow_p, _ = api_study
    report = pacs.get(body["links"]["fhir"]).json()
    devices = [r for r in report["contained"] if r["resourceType"] == "Device"]
    assert [d["version"] for d in devices] == [[{"value": "1"}]]
    assert all("shadow" not in d["type"]["text"] for d in devices)
    text = json.dumps(report)
    assert str(MARK_P) not in text and "shadow" not in text


def _algorithm_versions(ds: pydicom.Dataset) -> set[str]:
    found = set()
    for elem in ds.iterall():
        if elem.keyword == "AlgorithmVersion":
            found.add(str(elem.value))
    return found


def test_sr_names_production_only(api_study, pacs):
    body, production, _shadow_p, _ = api_study
    response = pacs.get(body["links"]["sr"])
    assert response.status_code == 200, response.content
    sr = pydicom.dcmread(io.BytesIO(response.content))
    assert _algorithm_versions(sr) == {"1"}
    values = {float(e.value) for e in sr.iterall() if e.keyword == "NumericValue"}
    assert values and all(abs(v - MARK_P) > 1e-6 for v in values)
    assert pytest.approx(production.confidence, abs=1e-4) in values


def test_webhook_is_sent_once_for_production_and_never_for_the_shadow(api_study):
    body, _production, _shadow_p, sent = api_study
    deliveries = list(WebhookDelivery.objects.filter(study__uid=body["uid"]))
    assert len(deliveries) == 1 and sent == [deliveries[0].pk]
    payload = json.loads(deliveries[0].payload)
    assert [i["prediction"]["model_version"] for i in payload["study"]["images"]] == ["1"]
    assert "shadow" not in deliveries[0].payload and str(MARK_P) not in deliveries[0].payload
