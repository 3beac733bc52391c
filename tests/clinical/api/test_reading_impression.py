"""Issue 14 item 13: the reader's structured impression (class + free text) goes into the FHIR
DiagnosticReport conclusion and, as a TEXT item "Impression" (DCM 121073), into the SR's
measurement group of the image; the SR stays valid (dciodvfy, dsrdump)."""

from __future__ import annotations

import io

import pydicom
import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from clinical.models import Image, Prediction
from clinical.services.reviews import review_create
from tests.clinical.api.test_results import dicom_study  # noqa: F401 (fixture)
from tests.support.dicom_validation import assert_valid_dicom

pytestmark = pytest.mark.django_db


def test_impression_in_fhir_conclusion_and_sr(pacs, dicom_study, radiologist):  # noqa: F811
    image = Image.objects.get(study__uid=dicom_study["uid"])
    review_create(
        image=image,
        verdict="corrected",
        label="lung-tuberculosis",
        impression="Right upper-lobe cavity; compare with prior.",
        reader=radiologist,
    )

    report = pacs.get(dicom_study["links"]["fhir"]).json()
    DiagnosticReport.model_validate(report)
    assert "Impression: Tuberculosis. Right upper-lobe cavity; compare with prior." in report["conclusion"]
    codes = [c["coding"][0]["code"] for c in report["conclusionCode"]]
    assert codes == ["lung-tuberculosis"]  # conclusionCode kept: the reader's class

    response = pacs.get(dicom_study["links"]["sr"])
    assert response.status_code == 200
    assert_valid_dicom(response.content)
    sr = pydicom.dcmread(io.BytesIO(response.content))
    measurements = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    group = measurements.ContentSequence[0]
    texts = [
        (
            i.ConceptNameCodeSequence[0].CodeValue,
            i.ConceptNameCodeSequence[0].CodingSchemeDesignator,
            i.RelationshipType,
            i.TextValue,
        )
        for i in group.ContentSequence
        if i.ValueType == "TEXT"
    ]
    assert ("121073", "DCM", "CONTAINS", "Tuberculosis. Right upper-lobe cavity; compare with prior.") in texts


def test_a_reading_without_impression_text_gives_the_class_alone(pacs, dicom_study, radiologist):  # noqa: F811
    image = Image.objects.get(study__uid=dicom_study["uid"])
    review_create(image=image, verdict="corrected", label="lung-covid", reader=radiologist)
    report = pacs.get(dicom_study["links"]["fhir"]).json()
    assert "Impression: COVID-19 pneumonia" in report["conclusion"]
    assert_valid_dicom(pacs.get(dicom_study["links"]["sr"]).content)


def test_feedback_takes_an_impression_and_refuses_agree_out_of_scope(pacs, dicom_study):  # noqa: F811
    url = dicom_study["links"]["feedback"]
    response = pacs.post(
        url,
        {"verdict": "corrected", "label": "lung-covid", "impression": "Bilateral GGO."},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    reading = pacs.get(dicom_study["links"]["self"]).json()["images"][0]["reviews"][0]
    assert reading["impression"] == "Bilateral GGO."
    assert (
        "Impression: COVID-19 pneumonia. Bilateral GGO." in pacs.get(dicom_study["links"]["fhir"]).json()["conclusion"]
    )
    response = pacs.post(
        url, {"verdict": "corrected", "label": "lung-covid", "impression": "x" * 501}, content_type="application/json"
    )
    assert response.status_code == 400

    Prediction.objects.filter(image__study__uid=dicom_study["uid"]).update(out_of_scope=True)
    response = pacs.post(url, {"verdict": "agree"}, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_reading"
    assert "Out of scope" in response.json()["detail"]
