"""POST /api/v1/studies/: one study per request, all or nothing, idempotent, 4xx with reasons."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Image, Prediction, Study
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db

URL = "/api/v1/studies/"


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def stored_names() -> set[str]:
    names = set()
    for top in ("images", "display"):
        if default_storage.exists(top):
            for sub in default_storage.listdir(top)[0]:
                names |= {f"{top}/{sub}/{f}" for f in default_storage.listdir(f"{top}/{sub}")[1]}
    return names


def test_png_submission_is_accepted_and_triage_queued(pacs, production_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = pacs.post(URL, {"files": [upload("chest.png", chest_png(seed=11))], "accession_number": "A-1",
                                   "priority_hint": "stat"})
    assert response.status_code == 202, response.content
    body = response.json()
    study = Study.objects.get(uid=body["uid"])
    assert (study.api_client_id, study.source, study.accession_number, study.priority_hint) == (
        pacs.client.pk, "api", "A-1", "stat")
    assert body["status"] == "processing" and body["replayed"] is False
    assert body["images"] == [{"id": study.images.get().pk, "name": "image 1", "created": True}]
    assert study.images.get().original_name == "chest.png"  # stored, shown as "image 1"
    assert response["Location"] == body["links"]["self"] and body["links"]["fhir"].endswith("/fhir/")
    assert len(callbacks) == 1  # the prediction task, sent on commit
    assert Prediction.objects.get(image__study=study).status == Prediction.Status.QUEUED
    events = AuditEvent.objects.filter(object_type__in=["clinical.study", "clinical.image"])
    labels = set(events.values_list("actor_label", flat=True))
    assert labels == {"api:st-elsewhere-pacs"}


def test_several_files_make_one_study_dicom_first(pacs, production_model):
    dcm = make_cxr_dicom(rows=64, cols=64, study_uid="1.2.826.0.1.3680043.8.498.1")
    response = pacs.post(URL, {"files": [upload("a.png", chest_png(seed=1)), upload("b.dcm", dcm)]})
    assert response.status_code == 202, response.content
    study = Study.objects.get()
    assert study.images.count() == 2 and study.modality == "DX"
    assert study.uid != "1.2.826.0.1.3680043.8.498.1"  # de-identified, not the sender's UID


def test_one_bad_file_refuses_all_and_stores_nothing(pacs, production_model):
    before = stored_names()
    response = pacs.post(URL, {"files": [upload("ok.png", chest_png(seed=2)), upload("scan.png", b"%PDF-1.7 x")]})
    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "invalid_files"
    assert body["files"] == [{"name": "scan.png", "code": "unsupported_type", "status": 415,
                              "detail": "content is PDF, not an image; accepted: PNG, JPEG, DICOM"}]
    assert Study.objects.count() == 0 and Image.objects.count() == 0 and stored_names() == before


def test_mixed_failures_take_the_most_telling_status(pacs):
    truncated = chest_png(seed=3)[:200]
    response = pacs.post(URL, {"files": [upload("t.png", truncated), upload("e.png", b"")]})
    assert response.status_code == 422
    assert sorted(f["code"] for f in response.json()["files"]) == ["corrupt_image", "empty_file"]


def test_dicom_of_different_studies_is_refused(pacs, production_model):
    files = [upload("1.dcm", make_cxr_dicom(rows=32, cols=32)), upload("2.dcm", make_cxr_dicom(rows=32, cols=32))]
    response = pacs.post(URL, {"files": files})
    assert response.status_code == 400 and response.json()["code"] == "mixed_studies"
    assert Study.objects.count() == 0


def test_failure_while_storing_a_later_file_rolls_back_everything(pacs, production_model, monkeypatch):
    import clinical.services.submission as submission

    real = submission.image_ingest
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["filename"])
        if len(calls) == 2:
            raise OSError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(submission, "image_ingest", flaky)
    before = stored_names()
    with pytest.raises(OSError):
        pacs.post(URL, {"files": [upload("a.png", chest_png(seed=4)), upload("b.png", chest_png(seed=5))]})
    assert Study.objects.count() == 0 and Image.objects.count() == 0 and stored_names() == before


def test_idempotency_key_replays_the_original_answer(pacs, production_model):
    first = pacs.post(URL, {"files": [upload("a.png", chest_png(seed=6))]}, HTTP_IDEMPOTENCY_KEY="order-77")
    again = pacs.post(URL, {"files": [upload("other.png", chest_png(seed=7))]}, HTTP_IDEMPOTENCY_KEY="order-77")
    assert first.status_code == again.status_code == 202
    assert again.json()["uid"] == first.json()["uid"] and again.json()["replayed"] is True
    assert again["Idempotent-Replayed"] == "true"
    cut_short = pacs.post(URL, {}, HTTP_IDEMPOTENCY_KEY="order-77")  # a retry that lost its body
    assert cut_short.status_code == 202 and cut_short.json()["uid"] == first.json()["uid"]
    assert Study.objects.count() == 1 and Image.objects.count() == 1
    assert pacs.post(URL, {}, HTTP_IDEMPOTENCY_KEY="bad key").json()["code"] == "invalid_idempotency_key"


def test_same_sop_instance_again_gives_the_same_study_and_prediction(pacs, production_model):
    dcm = make_cxr_dicom(rows=48, cols=48)
    first = pacs.post(URL, {"files": [upload("x.dcm", dcm)]}).json()
    second = pacs.post(URL, {"files": [upload("x-again.dcm", dcm)]}).json()
    assert second["uid"] == first["uid"] and second["images"][0]["created"] is False
    assert Prediction.objects.count() == 1


def test_files_of_another_clients_study_are_a_conflict(pacs, make_pacs, production_model):
    dcm = make_cxr_dicom(rows=48, cols=48)
    assert pacs.post(URL, {"files": [upload("x.dcm", dcm)]}).status_code == 202
    other = make_pacs(name="other-ris")
    response = other.post(URL, {"files": [upload("x.dcm", dcm)]})
    assert response.status_code == 409 and response.json()["code"] == "study_of_another_sender"


@pytest.mark.parametrize(("extra", "status", "code"), [
    ({"CONTENT_TYPE": "application/json"}, 415, "unsupported_media_type"),
    ({"CONTENT_TYPE": "multipart/form-data"}, 400, "parse_error"),  # no boundary
    ({"CONTENT_TYPE": "multipart/form-data; boundary=zzz"}, 400, "invalid"),  # no parts: files missing
])
def test_wrong_or_malformed_body(pacs, extra, status, code):
    response = pacs.http.generic("POST", URL, b"--nope\r\nbroken", **pacs.auth, **extra)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_body_over_the_limit_is_413(pacs, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    response = pacs.post(URL, {"files": [upload("big.png", chest_png(size=(400, 400), seed=8))]})
    assert response.status_code == 413 and response.json()["code"] == "too_large"


def test_missing_files_and_bad_fields_are_400(pacs):
    response = pacs.post(URL, {"priority_hint": "whenever"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"files", "priority_hint"}


@pytest.mark.parametrize(("url", "profile", "allowed"), [
    ("ftp://ris.example.org/hook", "embedded", "scheme"),
    ("http://user:pw@ris.example.org/hook", "embedded", "credentials"),
    ("http://127.0.0.1:9/hook", "production", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "production", "link-local"),
    ("http://10.1.2.3/hook", "production", "private"),
])
def test_invalid_callback_url_is_400_with_reason(pacs, settings, url, profile, allowed):
    settings.PROFILE = profile
    response = pacs.post(URL, {"files": [upload("a.png", chest_png(seed=9))], "callback_url": url})
    assert response.status_code == 400 and response.json()["code"] == "invalid_callback_url"
    assert allowed in response.json()["detail"]
    assert Study.objects.count() == 0


def test_private_callback_allowed_for_a_client_that_may(make_pacs, settings, production_model):
    settings.PROFILE = "production"
    lan = make_pacs(name="lan-ris", allow_private_callbacks=True)
    response = lan.post(URL, {"files": [upload("a.png", chest_png(seed=10))], "callback_url": "http://10.1.2.3/h"})
    assert response.status_code == 202
    assert Study.objects.get().callback_url == "http://10.1.2.3/h"
