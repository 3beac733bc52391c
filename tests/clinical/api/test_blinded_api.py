"""A blinded read over the API, FHIR, SR and heat map: the AI is withheld until a verdict."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Study
from clinical.services.webhooks import _payload
from mlcore.services.blinding import blinded_share_set
from tests.clinical.api.test_results import ORIGINAL, URL, finish
from tests.clinical.dicom_factory import make_cxr_dicom

pytestmark = pytest.mark.django_db


def test_integrations_get_no_ai_until_a_verdict_then_all_of_it(pacs, production_model):
    blinded_share_set(actor="test", value=100)
    response = pacs.post(URL, {"files": [SimpleUploadedFile("cxr.dcm", make_cxr_dicom(
        rows=64, cols=64, accession="ACC-B", **ORIGINAL))]})
    assert response.status_code == 202, response.content
    body = response.json()
    finish(body["uid"])
    study = Study.objects.get(uid=body["uid"])
    assert study.blinded_read and study.ai_revealed_at is None and study.status == "awaiting_review"

    detail = pacs.get(body["links"]["self"]).json()
    assert detail["blinded_read"] is True and detail["ai_withheld"] is True and "blinded read" in detail["ai_withheld_reason"]
    assert detail["top_class"] == "" and detail["triage_priority"] is None and detail["out_of_scope"] is None
    prediction = detail["images"][0]["prediction"]
    assert prediction["status"] == "withheld" and prediction["probabilities"] == {} and prediction["findings"] == []
    assert prediction["model_version"] == "" and detail["images"][0]["links"]["heatmap"] is None
    listed = pacs.get(URL).json()["results"]
    assert [s["ai_withheld"] for s in listed if s["uid"] == body["uid"]] == [True]

    fhir = pacs.get(body["links"]["fhir"]).json()
    assert "contained" not in fhir and "withheld (blinded read)" in fhir["conclusion"]
    sr = pacs.get(body["links"]["sr"])
    assert sr.status_code == 409 and "blinded read" in sr.json()["detail"]
    heatmap = pacs.get(body["links"]["heatmap"])
    assert heatmap.status_code == 409 and heatmap.json()["code"] == "ai_withheld"
    webhook = _payload(Study.objects.get(pk=study.pk), pacs.client).decode()
    assert '"probabilities":{}' in webhook and '"status":"withheld"' in webhook

    # "agree" cannot be the verdict of a reader who has not seen the AI.
    refused = pacs.http.post(body["links"]["feedback"], {"verdict": "agree"}, content_type="application/json",
                             **pacs.auth)
    assert refused.status_code == 400 and "blinded read" in refused.json()["detail"]
    saved = pacs.http.post(body["links"]["feedback"], {"verdict": "corrected", "label": "lung-opacity"},
                           content_type="application/json", **pacs.auth)
    assert saved.status_code == 201, saved.content
    study.refresh_from_db()
    assert study.ai_revealed_at is not None and study.top_class
    detail = pacs.get(body["links"]["self"]).json()
    assert detail["ai_withheld"] is False and detail["blinded_read"] is True
    assert detail["images"][0]["prediction"]["status"] == "succeeded"
    assert detail["images"][0]["prediction"]["probabilities"]
    assert detail["images"][0]["reviews"][0]["blinded"] is True
    assert pacs.get(body["links"]["sr"]).status_code == 200
    assert pacs.get(body["links"]["heatmap"]).status_code == 200
    assert "contained" in pacs.get(body["links"]["fhir"]).json()
