"""Burned In Annotation YES: a warning on the study (viewer, worklist, upload result, API
``warnings``) or, under RADVIEWER_REFUSE_BURNED_IN, a refusal on every path with nothing
saved. File names: stored, shown as "image N" unless RADVIEWER_SHOW_FILE_NAMES."""

from __future__ import annotations

import json

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Image, OriginalIdentifiers, Prediction, Study
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom

pytestmark = pytest.mark.django_db

NAME = "Doe_Jane_MRN-55521.dcm"
STUDY_UID = "1.2.826.0.1.3680043.8.498.7001"


def _burned(sop: str = "1.2.826.0.1.3680043.8.498.7002", study: str = STUDY_UID) -> bytes:
    return make_cxr_dicom(rows=32, cols=32, study_uid=study, sop_uid=sop, extra={"BurnedInAnnotation": "YES"})


def _stow(pacs, *parts: bytes):
    boundary = "bIbO"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{boundary}--\r\n".encode()
    return pacs.http.generic("POST", "/dicomweb/studies", body, **pacs.auth, HTTP_ACCEPT="application/dicom+json",
                             content_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _stored_files() -> set[str]:
    if not default_storage.exists("images"):
        return set()
    return {f"{sub}/{f}" for sub in default_storage.listdir("images")[0]
            for f in default_storage.listdir(f"images/{sub}")[1]}


def _nothing_saved(files_before: set[str]) -> None:
    assert Study.objects.count() == 0 and Image.objects.count() == 0
    assert OriginalIdentifiers.objects.count() == 0 and Prediction.objects.count() == 0
    assert _stored_files() == files_before


def test_burned_in_is_a_warning_on_the_study_in_every_view(pacs, radiologist_client, production_model):
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile(NAME, _burned())]})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["burned_in_annotation"] is True
    assert body["warnings"] == ["image 1: Burned In Annotation is YES: text in the pixels may identify the "
                                "patient and is not removed by de-identification"]
    study = Study.objects.get(uid=body["uid"])
    assert study.burned_in_annotation and study.images.get().burned_in_annotation
    for prediction in Prediction.objects.filter(image__study=study):
        run_prediction(prediction_id=prediction.pk)

    detail = pacs.get(f"/api/v1/studies/{study.uid}/").json()
    assert detail["burned_in_annotation"] is True
    assert any("Burned In Annotation is YES" in w for w in detail["warnings"])
    listed = pacs.get("/api/v1/studies/").json()
    item = next(s for s in (listed["results"] if isinstance(listed, dict) else listed) if s["uid"] == study.uid)
    assert item["burned_in_annotation"] is True

    viewer = radiologist_client.get(f"/studies/{study.uid}/").content.decode()
    assert "banner warn burned-in" in viewer and "Burned In Annotation is YES" in viewer
    assert "badge warn burned-in" in viewer  # on the image itself
    worklist = radiologist_client.get("/worklist/").content.decode()
    row = worklist[worklist.index(f'data-uid="{study.uid}"'):]
    assert "burned-in text" in row[:row.index("</tr>")]


def test_a_clean_image_has_no_badge_and_no_warning(pacs, radiologist_client, production_model):
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("x.dcm", make_cxr_dicom(rows=32, cols=32))]})
    body = response.json()
    assert body["burned_in_annotation"] is False and body["warnings"] == []
    assert "burned-in" not in radiologist_client.get(f"/studies/{body['uid']}/").content.decode()
    assert "burned-in text" not in radiologist_client.get("/worklist/").content.decode()


def test_upload_page_shows_the_warning(radiologist_client, production_model):
    response = radiologist_client.post("/upload/file/", {"file": SimpleUploadedFile(NAME, _burned())},
                                       HTTP_HX_REQUEST="true")
    assert response.status_code == 201
    html = response.content.decode()
    assert "Burned-in annotation" in html
    assert NAME in html  # the uploader's own file name, echoed; the study page shows "image 1"
    study = Study.objects.get()
    assert NAME not in radiologist_client.get(f"/studies/{study.uid}/").content.decode()


def test_refused_by_policy_on_the_rest_api_with_nothing_saved(pacs, settings):
    settings.REFUSE_BURNED_IN = True
    files_before = _stored_files()
    clean = make_cxr_dicom(rows=32, cols=32, study_uid=STUDY_UID, sop_uid="1.2.826.0.1.3680043.8.498.7003")
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("clean.dcm", clean),
                                                        SimpleUploadedFile(NAME, _burned())]})
    assert response.status_code == 422 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "invalid_files"
    refused = [f for f in body["files"] if f["code"] == "burned_in_annotation"]
    assert len(refused) == 1 and "RADVIEWER_REFUSE_BURNED_IN" in refused[0]["detail"]
    _nothing_saved(files_before)  # all or nothing: the clean file of the request is not stored either


def test_refused_by_policy_on_stow_rs_per_instance(pacs, settings, production_model):
    settings.REFUSE_BURNED_IN = True
    clean = make_cxr_dicom(rows=32, cols=32, study_uid=STUDY_UID, sop_uid="1.2.826.0.1.3680043.8.498.7004")
    response = _stow(pacs, clean, _burned())
    assert response.status_code == 202, response.content
    body = response.json()
    failed = body["00081198"]["Value"]
    assert len(failed) == 1
    assert failed[0]["00081155"]["Value"] == ["1.2.826.0.1.3680043.8.498.7002"]
    assert failed[0]["00081197"]["Value"] == [0x0124]  # Refused: Not Authorized (by policy)
    assert len(body["00081199"]["Value"]) == 1
    assert Image.objects.count() == 1 and not Image.objects.get().burned_in_annotation

    only_burned = _stow(pacs, _burned(sop="1.2.826.0.1.3680043.8.498.7005", study="1.2.826.0.1.3680043.8.498.7006"))
    assert only_burned.status_code == 409
    assert Image.objects.count() == 1


def test_refused_by_policy_on_the_upload_page(radiologist_client, settings):
    settings.REFUSE_BURNED_IN = True
    files_before = _stored_files()
    response = radiologist_client.post("/upload/file/", {"file": SimpleUploadedFile(NAME, _burned())},
                                       HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    html = response.content.decode()
    assert "refused" in html and "Burned In Annotation YES" in html and "burned_in_annotation" in html
    _nothing_saved(files_before)


def test_file_names_are_stored_but_shown_as_neutral_labels(pacs, radiologist_client, production_model):
    files = [SimpleUploadedFile(NAME, make_cxr_dicom(rows=32, cols=32, study_uid=STUDY_UID,
                                                     sop_uid="1.2.826.0.1.3680043.8.498.7010")),
             SimpleUploadedFile("Smith_John_second_view.dcm",
                                make_cxr_dicom(rows=32, cols=32, study_uid=STUDY_UID,
                                               sop_uid="1.2.826.0.1.3680043.8.498.7011"))]
    body = pacs.post("/api/v1/studies/", {"files": files}).json()
    assert [i["name"] for i in body["images"]] == ["image 1", "image 2"]
    study = Study.objects.get(uid=body["uid"])
    assert sorted(study.images.values_list("original_name", flat=True)) == sorted([NAME, "Smith_John_second_view.dcm"])
    for prediction in Prediction.objects.filter(image__study=study):
        run_prediction(prediction_id=prediction.pk)

    detail = pacs.get(f"/api/v1/studies/{study.uid}/")
    fhir = pacs.get(detail.json()["links"]["fhir"])
    viewer = radiologist_client.get(f"/studies/{study.uid}/")
    assert [i["name"] for i in detail.json()["images"]] == ["image 1", "image 2"]
    assert "image 1:" in json.loads(fhir.content)["conclusion"]
    for response in (detail, fhir, viewer):
        text = response.content.decode()
        assert "Doe_Jane" not in text and "Smith_John" not in text


def test_file_names_are_shown_where_the_setting_allows(pacs, radiologist_client, production_model, settings):
    settings.SHOW_FILE_NAMES = True
    body = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile(NAME, make_cxr_dicom(rows=32, cols=32))]}).json()
    assert body["images"][0]["name"] == NAME
    for prediction in Prediction.objects.filter(image__study__uid=body["uid"]):
        run_prediction(prediction_id=prediction.pk)
    assert NAME in json.loads(pacs.get(body["links"]["fhir"]).content)["conclusion"]
    assert NAME in radiologist_client.get(f"/studies/{body['uid']}/").content.decode()
