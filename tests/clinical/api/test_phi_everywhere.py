"""A DICOM carrying every attribute of PS3.15 Table E.1-1 (nested too) and our own PHI corpus,
sent through the upload page, the REST API and STOW-RS: no planted value reaches the stored
files, the viewer and worklist, the API JSON, FHIR, the SR (beyond the patient module it
returns to the source PACS on purpose), the logs, the broker messages or the dataset store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from celery.app.task import Task
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.ingest.deid_profile import ALLOWED
from clinical.models import Image, OriginalIdentifiers, Prediction, Review, Study
from clinical.services.reviews import review_export_feedback
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.phi import Planted, assert_deidentified, leaks, plant_corpus, plant_table, read, write

pytestmark = pytest.mark.django_db

# The file name is PHI too: stored, never shown.
FILENAME = "Doe_Jane_MRN-55521_chest.dcm"


def _phi_dicom(sop_uid: str) -> tuple[bytes, Planted]:
    ds = read(make_cxr_dicom(rows=48, cols=48, patient_name="Doe^Jane", patient_id="MRN-55521",
                             accession="ACC-7781", issuer="HOSP-MUNGO-ISSUER", sop_uid=sop_uid))
    planted = Planted(markers={"Doe^Jane", "MRN-55521", "ACC-7781", "HOSP-MUNGO-ISSUER", "MRN-55521_chest"})
    plant_table(ds, planted)
    plant_corpus(ds, planted)
    return write(ds), planted


@pytest.fixture
def broker_messages(monkeypatch) -> list[str]:
    sent: list[str] = []
    original = Task.apply_async

    def record(self, args=None, kwargs=None, **options):
        sent.append(json.dumps({"task": self.name, "args": args, "kwargs": kwargs}, default=str))
        return original(self, args=args, kwargs=kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", record)
    return sent


def _submit(path: str, data: bytes, *, pacs, radiologist_client) -> tuple[Study, bytes]:
    before = set(Study.objects.values_list("pk", flat=True))
    if path == "upload":
        response = radiologist_client.post("/upload/file/", {"file": SimpleUploadedFile(FILENAME, data)},
                                           HTTP_HX_REQUEST="true")
        assert response.status_code == 201, response.content
    elif path == "rest":
        response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile(FILENAME, data)]})
        assert response.status_code == 202, response.content
    else:
        boundary = "phib0undary"
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
                + f"\r\n--{boundary}--\r\n".encode())
        response = pacs.http.generic("POST", "/dicomweb/studies", body, **pacs.auth,
                                     content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
                                     HTTP_ACCEPT="application/dicom+json")
        assert response.status_code == 200, response.content
    study = Study.objects.exclude(pk__in=before).get()
    for prediction in Prediction.objects.filter(image__study=study):
        run_prediction(prediction_id=prediction.pk)
    return study, response.content


def _dataset_store_bytes() -> bytes:
    root = Path(settings.DATASET_STORE_URI)
    if not root.exists():
        return b""
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize("path", ["upload", "rest", "stow"])
def test_no_planted_phi_reaches_any_output(path, pacs, radiologist_client, production_model, caplog,
                                          broker_messages, django_capture_on_commit_callbacks):
    data, planted = _phi_dicom(sop_uid=f"1.2.826.0.1.3680043.8.498.{900 + len(path)}")
    assert len(planted.markers) >= 500
    caplog.set_level(logging.DEBUG)

    with django_capture_on_commit_callbacks(execute=True):
        study, answer = _submit(path, data, pacs=pacs, radiologist_client=radiologist_client)
    image = Image.objects.get(study=study)
    pseudonym = study.patient_key

    # Stored copy: only the allow-list, every table action respected, nothing planted.
    with image.file.open("rb") as fh:
        assert_deidentified(fh.read(), planted, pseudonym=pseudonym, allowed=ALLOWED)

    outputs: dict[str, bytes | str] = {
        "submit_answer": answer,
        "viewer": radiologist_client.get(f"/studies/{study.uid}/").content,
        "worklist": radiologist_client.get("/worklist/").content,
        "status": radiologist_client.get(f"/studies/{study.uid}/status/").content,
    }
    if path != "upload":
        detail = pacs.get(f"/api/v1/studies/{study.uid}/")
        assert detail.status_code == 200
        links = detail.json()["links"]
        outputs["api"] = detail.content
        outputs["api_list"] = pacs.get("/api/v1/studies/").content
        outputs["fhir"] = pacs.get(links["fhir"]).content
        with django_capture_on_commit_callbacks(execute=True):
            feedback = pacs.post(links["feedback"], {"verdict": "corrected", "label": "lung-tuberculosis"},
                                 content_type="application/json")
        assert feedback.status_code == 201, feedback.content
        review_export_feedback(review_id=Review.objects.get(image=image).pk)
        outputs["datasets"] = _dataset_store_bytes()
        outputs["sr"] = pacs.get(links["sr"]).content
    outputs["logs"] = "\n".join(r.getMessage() + repr(getattr(r, "args", "")) for r in caplog.records)
    outputs["broker"] = "\n".join(broker_messages)
    assert broker_messages, "the prediction task was sent"

    # The sender gets its own identifiers back, and only these: the source study's UIDs and
    # accession in the STOW-RS answer (PS3.18 names the stored instances), the API JSON and FHIR, and the patient module too in the SR it files under
    # that patient (issue 13 item 9). Each such read of the protected mapping is audited.
    ids = OriginalIdentifiers.objects.get(image=image)
    returned = {ids.study_instance_uid, ids.series_instance_uid, ids.sop_instance_uid, ids.accession_number}
    patient = {ids.patient_name, ids.patient_id, ids.issuer_of_patient_id, ids.patient_birth_date}
    own_name = {m for m in planted.markers if m in FILENAME} if path == "upload" else set()
    # (the upload page echoes the uploader's own file name in its answer, nowhere else)
    allowed = {"submit_answer": returned | own_name, "api": returned, "api_list": returned, "fhir": returned,
               "sr": returned | patient}
    found = {name: [m for m in leaks(text, planted) if m not in allowed.get(name, set())]
             for name, text in outputs.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}
