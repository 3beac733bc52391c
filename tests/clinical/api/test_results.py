"""Reading results back: JSON, FHIR R4 DiagnosticReport, DICOM SR, heat map; feedback; polling."""

from __future__ import annotations

import io
from datetime import timedelta

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from PIL import Image as PILImage

from clinical.models import Prediction, Review, Study
from clinical.tasks import run_prediction
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png
from tests.support.dicom_validation import assert_valid_dicom, dciodvfy, dsrdump

pytestmark = pytest.mark.django_db

URL = "/api/v1/studies/"
ORIGINAL = {"study_uid": "1.2.826.0.1.3680043.8.498.77", "series_uid": "1.2.826.0.1.3680043.8.498.78",
            "sop_uid": "1.2.826.0.1.3680043.8.498.79"}


def submit(pacs, *files: tuple[str, bytes], **fields) -> dict:
    response = pacs.post(URL, {"files": [SimpleUploadedFile(n, d) for n, d in files], **fields})
    assert response.status_code == 202, response.content
    return response.json()


def finish(uid: str) -> None:
    for prediction in Prediction.objects.filter(image__study__uid=uid):
        run_prediction(prediction_id=prediction.pk)


@pytest.fixture
def dicom_study(pacs, production_model) -> dict:
    body = submit(pacs, ("cxr.dcm", make_cxr_dicom(rows=64, cols=64, accession="ACC-9", **ORIGINAL)))
    finish(body["uid"])
    return body


def test_detail_has_predictions_and_the_senders_identifiers(pacs, dicom_study):
    response = pacs.get(dicom_study["links"]["self"])
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "awaiting_review" and body["submitted_via"] == "api"
    image = body["images"][0]
    prediction = image["prediction"]
    assert prediction["status"] == "succeeded" and prediction["model_version"] == "1"
    assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-4
    assert prediction["findings"][0]["key"] == prediction["top_class"]
    assert prediction["top_class_display"] and prediction["confidence"] == pytest.approx(
        prediction["findings"][0]["probability"], abs=1e-6)
    assert image["source_ids"]["sop_instance_uid"] == ORIGINAL["sop_uid"]
    assert body["source_study"] == {"study_instance_uid": ORIGINAL["study_uid"], "accession_number": "ACC-9"}
    assert image["links"]["heatmap"].endswith(f"/images/{image['id']}/heatmap.png")
    reads = AuditEvent.objects.filter(action="phi.original_ids_read", actor_label="api:st-elsewhere-pacs")
    assert reads.exists() and reads.first().details["purpose"] == "return results to source PACS"


def test_status_polling_is_audited_once_per_window_and_sr_exports_every_time(pacs, dicom_study, settings):
    settings.AUDIT_READ_WINDOW_S = 300
    label = "api:st-elsewhere-pacs"
    for _ in range(5):
        assert pacs.get(dicom_study["links"]["self"]).status_code == 200
    viewed = AuditEvent.objects.filter(action="study.viewed", actor_label=label)
    reads = AuditEvent.objects.filter(action="phi.original_ids_read", actor_label=label)
    assert viewed.count() == 1 and viewed.get().details["coalesced_window_s"] == 300
    assert reads.count() == 1
    for _ in range(2):
        response = pacs.get(dicom_study["links"]["sr"])
        assert response.status_code == 200
        assert_valid_dicom(response.content)
    # The SR carries the patient module: every export is recorded, never coalesced.
    assert reads.count() == 3
    assert AuditEvent.objects.filter(action="study.result_exported", actor_label=label).count() == 2


def test_with_no_window_every_poll_is_audited(pacs, dicom_study, settings):
    settings.AUDIT_READ_WINDOW_S = 0
    for _ in range(3):
        pacs.get(dicom_study["links"]["self"])
    assert AuditEvent.objects.filter(action="study.viewed", actor_label="api:st-elsewhere-pacs").count() == 3


def test_other_clients_study_is_404_like_a_missing_one(make_pacs, dicom_study):
    other = make_pacs(name="other-ris")
    assert other.get(dicom_study["links"]["self"]).status_code == 404
    assert other.get(dicom_study["links"]["fhir"]).status_code == 404
    assert other.get(URL + "2.25.1/").status_code == 404


def test_fhir_diagnostic_report_validates_as_r4(pacs, dicom_study):
    response = pacs.get(dicom_study["links"]["fhir"])
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    report = response.json()
    DiagnosticReport.model_validate(report)  # raises on any structural error
    assert report["status"] == "preliminary"
    assert report["code"]["coding"][0] == {"system": "http://loinc.org", "code": "18748-4",
                                           "display": "Diagnostic imaging study"}
    observations = [r for r in report["contained"] if r["resourceType"] == "Observation"]
    # a DX of the chest: the five chest classes (the header's scope), no retinal ones
    assert len(observations) == 5 and len(report["result"]) == 5
    assert not any("oct" in o["code"]["coding"][0]["code"] for o in observations)
    device = next(r for r in report["contained"] if r["resourceType"] == "Device")
    assert device["version"] == [{"value": "1"}]
    assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{ORIGINAL['study_uid']}"
    assert report["subject"]["identifier"]["system"] == "urn:radviewer:patient-pseudonym"
    assert "MRN123" not in response.content.decode()


def test_sr_refers_to_the_original_instances(pacs, dicom_study):
    response = pacs.get(dicom_study["links"]["sr"])
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    assert_valid_dicom(response.content)
    sr = pydicom.dcmread(io.BytesIO(response.content))
    assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == ORIGINAL["study_uid"] and sr.AccessionNumber == "ACC-9"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == ORIGINAL["study_uid"]
    ref = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == ORIGINAL["sop_uid"]
    # Filed back into the source PACS, the SR carries the patient module that PACS sent
    # (re-identified from the protected mapping), so it lands under the same patient/study.
    assert sr.PatientID == "MRN123" and str(sr.PatientName) == "Doe^Jane"
    assert Study.objects.get(uid=dicom_study["uid"]).patient_key.startswith("pt-")
    # ...while the JSON result stays pseudonymous.
    assert "MRN123" not in pacs.get(f"/api/v1/studies/{dicom_study['uid']}/").content.decode()
    # Same result, same SOP Instance UID: a PACS will not file a duplicate.
    again = pydicom.dcmread(io.BytesIO(pacs.get(dicom_study["links"]["sr"]).content))
    assert again.SOPInstanceUID == sr.SOPInstanceUID


def test_an_undecided_scope_names_no_class_in_json_fhir_and_sr(pacs, dicom_study):
    # What the worker stores when the model cannot tell a chest X-ray from a retinal OCT.
    Prediction.objects.filter(image__study__uid=dicom_study["uid"]).update(
        top_class="", confidence=0.0, scope="", scope_source="undecided", out_of_scope=True,
        ood_reason="could not tell a chest X-ray from a retinal OCT")
    body = pacs.get(dicom_study["links"]["self"]).json()
    prediction = body["images"][0]["prediction"]
    assert prediction["top_class"] == "" and prediction["scope"] == "" and prediction["out_of_scope"]
    assert "could not tell" in prediction["out_of_scope_reason"]
    report = pacs.get(dicom_study["links"]["fhir"]).json()
    DiagnosticReport.model_validate(report)
    assert "AI named no class" in report["conclusion"]
    response = pacs.get(dicom_study["links"]["sr"])
    assert_valid_dicom(response.content)
    sr = pydicom.dcmread(io.BytesIO(response.content))
    assert "scope-undecided" in str(sr.ContentSequence)


def test_sr_for_a_source_without_study_id_has_it_present_and_empty(pacs, production_model):
    # Study ID, Study Date/Time and Referring Physician are Type 2: real modalities often omit
    # them. The SR must still be written (it was a 500), with each present and empty.
    body = submit(pacs, ("cxr.dcm", make_cxr_dicom(
        rows=64, cols=64, omit=("StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName"))))
    finish(body["uid"])
    response = pacs.get(body["links"]["sr"])
    assert response.status_code == 200, response.content[:500]
    verdict = assert_valid_dicom(response.content)
    # dciodvfy only warns that a DICOMDIR would want them; it does not call them missing.
    assert not [w for w in verdict.warnings if "Missing attribute" in w and "DICOMDIR" not in w]
    sr = pydicom.dcmread(io.BytesIO(response.content))
    for keyword in ("StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName"):
        assert keyword in sr and sr.data_element(keyword).value in ("", None), keyword


def test_sr_names_the_patient_and_does_not_claim_de_identification(pacs, dicom_study):
    sr = pydicom.dcmread(io.BytesIO(pacs.get(dicom_study["links"]["sr"]).content))
    # The patient module the source sent, from the protected mapping...
    assert (sr.PatientID, str(sr.PatientName), sr.PatientBirthDate, sr.PatientSex) == (
        "MRN123", "Doe^Jane", "19610923", "F")
    # ...so it does not say the identity was removed, nor how (those are the stored copy's).
    assert sr.PatientIdentityRemoved == "NO"
    for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified"):
        assert keyword not in sr, keyword
    # Nothing of the de-identified header leaks in either (its "ANONYMIZED" placeholders).
    assert b"ANONYMIZED" not in pacs.get(dicom_study["links"]["sr"]).content
    # The stored copy stays de-identified and says so.
    image = Study.objects.get(uid=dicom_study["uid"]).images.get()
    with image.file.open("rb") as fh:
        stored = pydicom.dcmread(fh, stop_before_pixels=True)
    assert stored.PatientIdentityRemoved == "YES" and stored.PatientID.startswith("pt-")


def _code(code) -> str:
    return code.get("CodeValue") or code.get("LongCodeValue")


def test_sr_codes_classes_with_snomed_and_the_private_scheme(pacs, dicom_study):
    from clinical.api.codes import CLASS_CODES
    from mlcore.ml.classes import CLASS_KEYS

    assert set(CLASS_CODES) == set(CLASS_KEYS)
    Prediction.objects.filter(image__study__uid=dicom_study["uid"]).update(top_class="lung-covid")
    feedback = pacs.post(dicom_study["links"]["feedback"], {"verdict": "corrected", "label": "lung-tuberculosis"},
                         content_type="application/json")
    assert feedback.status_code == 201, feedback.content
    response = pacs.get(dicom_study["links"]["sr"])
    assert_valid_dicom(response.content)
    sr = pydicom.dcmread(io.BytesIO(response.content))
    group = next(i for i in sr.ContentSequence
                 if i.ConceptNameCodeSequence[0].get("CodeValue") == "126010").ContentSequence[0]
    coded = {}
    for item in group.ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if item.ValueType == "CODE":
            coded[_code(name)] = item.ConceptCodeSequence[0]
    finding, read = coded["121071"], coded["reader-label"]
    assert (finding.CodeValue, finding.CodingSchemeDesignator, finding.CodeMeaning) == ("840539006", "SCT", "COVID-19")
    assert finding.EquivalentCodeSequence[0].CodeValue == "lung-covid"
    assert finding.EquivalentCodeSequence[0].CodingSchemeDesignator == "99RADVIEWER"
    assert (read.CodeValue, read.CodingSchemeDesignator) == ("56717001", "SCT")
    assert _code(read.EquivalentCodeSequence[0]) == "lung-tuberculosis"  # a Long Code Value (> 16 chars)
    # The private scheme is declared in the SOP Common module.
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99RADVIEWER"


def test_sr_of_a_png_study_or_before_the_result_is_409(pacs, production_model):
    png = submit(pacs, ("a.png", chest_png(seed=21)))
    response = pacs.get(png["links"]["sr"])
    assert response.status_code == 409 and "PNG/JPEG" in response.json()["detail"]
    pending = submit(pacs, ("b.dcm", make_cxr_dicom(rows=32, cols=32)))
    response = pacs.get(pending["links"]["sr"])
    assert response.status_code == 409 and "no AI result yet" in response.json()["detail"]


def test_heatmap_png_is_the_images_size(pacs, dicom_study):
    response = pacs.get(dicom_study["links"]["heatmap"])
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    img = PILImage.open(io.BytesIO(response.content))
    assert img.mode == "RGBA" and img.size == (64, 64)


def test_heatmap_before_the_result_is_a_json_404(pacs, production_model):
    body = submit(pacs, ("c.png", chest_png(seed=22)))
    response = pacs.get(body["links"]["heatmap"])
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


def test_feedback_is_stored_as_an_api_review(pacs, dicom_study, django_capture_on_commit_callbacks):
    url = dicom_study["links"]["feedback"]
    with django_capture_on_commit_callbacks():
        response = pacs.post(url, {"verdict": "corrected", "label": "lung-tuberculosis", "note": "RIS read"},
                             content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["study_status"] == "reviewed"
    review = Review.objects.get()
    assert (review.source, review.source_label, review.label) == ("api", "api:st-elsewhere-pacs",
                                                                  "lung-tuberculosis")
    report = pacs.get(dicom_study["links"]["fhir"]).json()
    assert report["status"] == "final"
    assert report["conclusionCode"][0]["coding"][0]["code"] == "lung-tuberculosis"


@pytest.mark.parametrize(("payload", "code"), [
    ({"verdict": "corrected"}, "invalid_reading"),
    ({"verdict": "corrected", "label": "lung-unicorn"}, "invalid"),
    ({"verdict": "agree", "image": 999999}, "unknown_image"),
])
def test_bad_feedback_is_400(pacs, dicom_study, payload, code):
    response = pacs.post(dicom_study["links"]["feedback"], payload, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == code


def test_feedback_needs_json(pacs, dicom_study):
    response = pacs.post(dicom_study["links"]["feedback"], "verdict=agree",
                         content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_polling_since_with_cursor_pages_sees_only_own_studies(pacs, make_pacs, production_model):
    other = make_pacs(name="other-ris")
    submit(other, ("o.png", chest_png(seed=30)))
    uids = [submit(pacs, (f"{i}.png", chest_png(seed=31 + i)))["uid"] for i in range(3)]
    Study.objects.filter(uid=uids[0]).update(received_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    page = pacs.get(URL, data={"since": since, "limit": 1}).json()
    seen = [r["uid"] for r in page["results"]]
    while page["next"]:
        page = pacs.get(page["next"]).json()
        seen += [r["uid"] for r in page["results"]]
    assert seen == uids[1:]
    assert pacs.get(URL, data={"since": "yesterday"}).json()["code"] == "invalid_since"
    assert pacs.get(URL, data={"cursor": "garbage"}).json()["code"] == "invalid_cursor"


def test_the_sr_check_itself_catches_a_broken_sr(pacs, dicom_study):
    # The validator the SR tests rely on must be able to fail: drop Type 1 attributes.
    sr = pydicom.dcmread(io.BytesIO(pacs.get(dicom_study["links"]["sr"]).content))
    del sr.CompletionFlag
    del sr.ContentSequence[0].ValueType
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    verdict = dciodvfy(buf.getvalue())
    assert any("CompletionFlag" in e or "Completion Flag" in e for e in verdict.errors), verdict.output
    with pytest.raises(AssertionError, match="dciodvfy found errors"):
        assert_valid_dicom(buf.getvalue())
    assert any("ValueType" in e or "content item" in e for e in dsrdump(buf.getvalue()).errors)


def test_sr_for_an_image_of_a_private_sop_class_refers_to_that_class(pacs, production_model):
    # highdicom has no IOD entry for a private SOP Class: this was a 500 too.
    private_class = "1.2.826.0.1.3680043.8.498.999"
    body = submit(pacs, ("cxr.dcm", make_cxr_dicom(rows=64, cols=64, extra={"SOPClassUID": private_class})))
    finish(body["uid"])
    response = pacs.get(body["links"]["sr"])
    assert response.status_code == 200, response.content[:500]
    assert_valid_dicom(response.content)
    sr = pydicom.dcmread(io.BytesIO(response.content))
    ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPClassUID == private_class
    assert sr.PatientID == "MRN123"


def test_a_status_poll_is_a_fixed_number_of_queries_and_decrypts_no_patient_field(pacs, dicom_study, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from radviewer.lib import phi_crypto

    decrypted = []
    real = phi_crypto.phi_decrypt
    monkeypatch.setattr(phi_crypto, "phi_decrypt", lambda token: decrypted.append(real(token)) or decrypted[-1])
    pacs.get(dicom_study["links"]["self"])  # the first read of the study is audited; later ones coalesce
    decrypted.clear()
    with CaptureQueriesContext(connection) as queries:
        response = pacs.get(dicom_study["links"]["self"])
    assert response.status_code == 200
    assert response.json()["images"][0]["source_ids"]["accession_number"] == "ACC-9"
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    # the client, the study, its images with their mapping row, predictions, reviews
    assert len(selects) == 5, selects
    assert "ACC-9" in decrypted and "Doe^Jane" not in decrypted and len(decrypted) == 4  # 3 UIDs + accession
    sr = pydicom.dcmread(io.BytesIO(pacs.get(dicom_study["links"]["sr"]).content))
    assert str(sr.PatientName) == "Doe^Jane"  # the SR filed back into the PACS still names the patient
