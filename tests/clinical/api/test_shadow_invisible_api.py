"""A shadow prediction never reaches an integration: REST JSON, FHIR, SR, heat map, webhook
(issue 11, DESIGN.md section 7). See tests/clinical/test_shadow_invisible.py for the setup."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Prediction, WebhookDelivery
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.registry import registry_fixture  # noqa: F401 (the `registry` fixture)
from tests.support.rollout import MARK_P, mark, shadow_fixture  # noqa: F401 (the `shadow` fixture)

pytestmark = pytest.mark.django_db


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
    mark(shadow_p, production)
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
    assert heat.status_code == 200
    body_bytes = b"".join(heat.streaming_content) if heat.streaming else heat.content
    with default_storage.open(production.heatmap_png.name, "rb") as fh:
        assert body_bytes == fh.read()


def test_fhir_report_names_production_only(api_study, pacs):
    body, _production, _shadow_p, _ = api_study
    report = pacs.get(body["links"]["fhir"]).json()
    devices = [r for r in report["contained"] if r["resourceType"] == "Device"]
    assert [d["version"] for d in devices] == [[{"value": "1"}]]
    assert all("shadow" not in d["type"]["text"] for d in devices)
    text = json.dumps(report)
    assert str(MARK_P) not in text and "shadow" not in text


def _algorithm_versions(ds: pydicom.Dataset) -> set[str]:
    """The TextValue of every "Algorithm Version" content item (DCM 111003, TID 4019)."""
    found = set()
    for item in ds.get("ContentSequence", []):
        names = item.get("ConceptNameCodeSequence", [])
        if names and names[0].get("CodeValue") == "111003":
            found.add(str(item.TextValue))
        found |= _algorithm_versions(item)
    return found


def test_sr_names_production_only(api_study, pacs):
    body, production, _shadow_p, _ = api_study
    response = pacs.get(body["links"]["sr"])
    assert response.status_code == 200, response.content
    sr = pydicom.dcmread(io.BytesIO(response.content))
    assert _algorithm_versions(sr) == {"1"}
    values = {float(e.value) for e in sr.iterall() if e.keyword == "NumericValue"}
    assert values and all(abs(v - MARK_P) > 1e-6 for v in values)
    assert any(abs(v - production.confidence) < 1e-4 for v in values)


def test_webhook_is_sent_once_for_production_and_never_for_the_shadow(api_study):
    body, _production, _shadow_p, sent = api_study
    deliveries = list(WebhookDelivery.objects.filter(study__uid=body["uid"]))
    assert len(deliveries) == 1 and sent == [deliveries[0].pk]
    payload = json.loads(deliveries[0].payload)
    assert [i["prediction"]["model_version"] for i in payload["study"]["images"]] == ["1"]
    assert "shadow" not in deliveries[0].payload and str(MARK_P) not in deliveries[0].payload
