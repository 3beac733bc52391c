"""The SR pushed to a client's result destinations: scheduling on triage done, sign-off and
amendment; STOW-RS attempts against a loopback DICOMweb receiver (retries with back-off,
refusals, giving up); sealed secrets; the admin pages. The Orthanc round trips (STOW-RS and
C-STORE, with a real worker) are in tests/integration/test_result_destinations.py."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest
from django.core.exceptions import ValidationError

from clinical.models import Prediction, ResultDelivery, ResultDestination, Study
from clinical.services import result_delivery as rd
from clinical.services.notifications import study_ready
from clinical.services.result_delivery import (
    ResultDeliveryRetryableError,
    result_deliveries_schedule,
    result_delivery_attempt,
    result_destination_save,
    result_redeliver,
)
from clinical.services.reviews import review_create, study_sign_off
from clinical.tasks import run_prediction
from radviewer.audit.models import AuditEvent
from radviewer.lib.sealed import unseal
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png
from tests.support.dicom_validation import assert_valid_dicom

pytestmark = pytest.mark.django_db

STUDY_UID = "1.2.826.0.1.3680043.8.498.8801"
PASSWORD = "pacs-password-\u00e9-42"


class StowReceiver:
    """A PACS's STOW-RS endpoint on loopback, answering with the statuses it is given."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.requests = list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                answer = json.dumps({"00081199": {"vr": "SQ", "Value": []}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def instances(self, index: int = -1) -> list[bytes]:
        _, headers, body = self.requests[index]
        message = BytesParser().parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
        return [part.get_payload(decode=True) for part in message.get_payload()]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def queued(monkeypatch) -> list[int]:
    """Delivery tasks the code queued (ids); the tests run the attempts themselves."""
    sent: list[int] = []
    monkeypatch.setattr("clinical.tasks.deliver_result.apply_async",
                        lambda kwargs: sent.append(kwargs["delivery_id"]))
    monkeypatch.setattr("clinical.tasks.deliver_webhook.apply_async", lambda kwargs: None)
    return sent


@pytest.fixture
def stow_receiver():
    made = []

    def make(*statuses: int) -> StowReceiver:
        made.append(StowReceiver(list(statuses)))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def ml_admin_client(client, ml_admin):
    """The ML admin in /admin/, staff as the demo accounts make it (accounts.services)."""
    ml_admin.is_staff = True
    ml_admin.save(update_fields=["is_staff"])
    client.force_login(ml_admin)
    return client


def destination(pacs, url: str, *, auth: str = "basic", secret: str | None = PASSWORD, **fields) -> ResultDestination:
    return result_destination_save(destination=ResultDestination(
        client=pacs.client, name=fields.pop("name", "pacs-stow"), kind="dicomweb", url=url, auth=auth,
        username="radviewer" if auth == "basic" else "", **fields), secret=secret)


def triaged_dicom_study(pacs, django_capture_on_commit_callbacks) -> Study:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = make_cxr_dicom(rows=64, cols=64, study_uid=STUDY_UID, sop_uid=f"{STUDY_UID}.1", accession="ACC-PUSH")
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("cxr.dcm", data)]})
    assert response.status_code == 202, response.content
    study = Study.objects.get(uid=response.json()["uid"])
    with django_capture_on_commit_callbacks(execute=True):  # result stored -> study_ready -> schedule
        run_prediction(prediction_id=Prediction.objects.get(image__study=study).pk)
    return study


def attempt(delivery: ResultDelivery) -> ResultDelivery:
    from clinical.api.sr import client_study_sr

    result_delivery_attempt(delivery_id=delivery.pk, render_sr=client_study_sr)
    delivery.refresh_from_db()
    return delivery


def test_triage_done_pushes_the_sr_over_stow_with_basic_auth(pacs, production_model, stow_receiver, queued,
                                                              django_capture_on_commit_callbacks):
    receiver = stow_receiver(200)
    dest = destination(pacs, receiver.url)
    study = triaged_dicom_study(pacs, django_capture_on_commit_callbacks)
    delivery = ResultDelivery.objects.get(study=study)
    assert (delivery.destination, delivery.trigger, delivery.status) == (dest, "triage_done", "pending")
    assert queued == [delivery.pk]

    delivery = attempt(delivery)
    assert (delivery.status, delivery.attempts, delivery.response) == ("delivered", 1, "HTTP 200")
    path, headers, _ = receiver.requests[0]
    assert path == "/dicom-web/studies"
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"radviewer:{PASSWORD}".encode()).decode()
    assert headers["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')
    [sr_bytes] = receiver.instances()
    assert_valid_dicom(sr_bytes)
    sr = pydicom.dcmread(io.BytesIO(sr_bytes))
    assert sr.Modality == "SR" and sr.StudyInstanceUID == STUDY_UID
    assert sr.SOPInstanceUID == delivery.sop_instance_uid
    event = AuditEvent.objects.get(action="result_delivery.delivered")
    assert event.actor_label == "api:st-elsewhere-pacs" and PASSWORD not in json.dumps(event.details)


def test_the_same_event_is_sent_once_and_png_or_failed_studies_not_at_all(pacs, production_model, stow_receiver,
                                                                           django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    destination(pacs, stow_receiver().url)
    study = triaged_dicom_study(pacs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks() as callbacks:
        study_ready(study_id=study.pk)  # the signal again: a duplicate task delivery
    assert ResultDelivery.objects.filter(study=study).count() == 1 and callbacks == []

    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("a.png", chest_png(seed=3))]})
    png_study = Study.objects.get(uid=response.json()["uid"])
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=Prediction.objects.get(image__study=png_study).pk)
    assert not ResultDelivery.objects.filter(study=png_study).exists()  # no DICOM source: no SR


def test_sign_off_and_each_amendment_push_again(pacs, production_model, stow_receiver, radiologist, queued,
                                                django_capture_on_commit_callbacks):
    receiver = stow_receiver()
    destination(pacs, receiver.url)
    study = triaged_dicom_study(pacs, django_capture_on_commit_callbacks)
    uids = [attempt(ResultDelivery.objects.get(study=study)).sop_instance_uid]
    image = study.images.get()
    review_create(image=image, verdict="agree", reader=radiologist)
    with django_capture_on_commit_callbacks(execute=True):
        study_sign_off(study=study, user=radiologist)
    study_sign_off(study=study, user=radiologist)  # already signed off: nothing new
    uids.append(attempt(ResultDelivery.objects.get(study=study, trigger="signed_off")).sop_instance_uid)
    with django_capture_on_commit_callbacks(execute=True):
        review_create(image=image, verdict="corrected", label="lung-normal", reader=radiologist,
                      amendment=True, note="second look")
    uids.append(attempt(ResultDelivery.objects.get(study=study, trigger="amended")).sop_instance_uid)
    rows = list(ResultDelivery.objects.filter(study=study).order_by("id"))
    assert [r.trigger for r in rows] == ["triage_done", "signed_off", "amended"]
    assert [r.status for r in rows] == ["delivered"] * 3, [r.last_error for r in rows]
    assert queued == [r.pk for r in rows]
    assert len(set(uids)) == 3  # each pushed SR is a new instance (the content changed each time)
    final = pydicom.dcmread(io.BytesIO(receiver.instances(-1)[0]))
    first = pydicom.dcmread(io.BytesIO(receiver.instances(0)[0]))
    assert (first.PreliminaryFlag, final.PreliminaryFlag) == ("PRELIMINARY", "FINAL")
    assert "lung-normal" in str(final)  # the amended reader label (private equivalent code)


def test_server_errors_are_retried_with_backoff_then_delivered(pacs, production_model, stow_receiver,
                                                               django_capture_on_commit_callbacks):
    receiver = stow_receiver(503, 200)
    destination(pacs, receiver.url, auth="bearer", secret="bearer-token-123")
    delivery = ResultDelivery.objects.get(study=triaged_dicom_study(pacs, django_capture_on_commit_callbacks))
    with pytest.raises(ResultDeliveryRetryableError):
        attempt(delivery)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response) == ("retrying", 1, "HTTP 503")
    assert delivery.next_attempt_at is not None and "HTTP 503" in delivery.last_error
    delivery = attempt(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, "")
    assert receiver.requests[-1][1]["Authorization"] == "Bearer bearer-token-123"


def test_a_destination_that_stays_down_fails_after_max_attempts_and_can_be_redelivered(
        pacs, production_model, monkeypatch, queued, stow_receiver, django_capture_on_commit_callbacks):
    closed = stow_receiver()
    url = closed.url
    closed.close()  # nothing listens there any more: connection refused
    monkeypatch.setattr(rd, "MAX_ATTEMPTS", 3)
    destination(pacs, url)
    delivery = ResultDelivery.objects.get(study=triaged_dicom_study(pacs, django_capture_on_commit_callbacks))
    waits = []
    for _ in range(2):
        with pytest.raises(ResultDeliveryRetryableError):
            attempt(delivery)
        delivery.refresh_from_db()
        assert delivery.status == "retrying" and "ConnectionError" in delivery.last_error
        waits.append((delivery.next_attempt_at - delivery.created_at).total_seconds())
    assert waits[1] > waits[0]  # the bound doubles: 1 s, 2 s, ...
    delivery = attempt(delivery)
    assert delivery.status == "failed" and delivery.last_error.startswith("gave up after 3 attempts")
    assert AuditEvent.objects.filter(action="result_delivery.failed").exists()
    with django_capture_on_commit_callbacks(execute=True):
        result_redeliver(delivery=delivery)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0) and queued[-1] == delivery.pk


@pytest.mark.parametrize("status", [401, 404, 409])
def test_a_refusal_fails_at_once(pacs, production_model, stow_receiver, status,
                                 django_capture_on_commit_callbacks):
    destination(pacs, stow_receiver(status).url)
    delivery = attempt(ResultDelivery.objects.get(study=triaged_dicom_study(pacs, django_capture_on_commit_callbacks)))
    assert (delivery.status, delivery.attempts, delivery.response) == ("failed", 1, f"HTTP {status}")
    assert "not retried" in delivery.last_error


def test_a_disabled_destination_gets_nothing(pacs, production_model, stow_receiver,
                                             django_capture_on_commit_callbacks):
    destination(pacs, stow_receiver().url, enabled=False)
    study = triaged_dicom_study(pacs, django_capture_on_commit_callbacks)
    assert not ResultDelivery.objects.filter(study=study).exists()
    assert result_deliveries_schedule(study_id=study.pk, trigger="triage_done") == []


def test_the_secret_is_sealed_and_never_shown(pacs, ml_admin_client):
    dest = destination(pacs, "https://pacs.example.org/dicom-web/")
    dest.refresh_from_db()
    assert PASSWORD not in dest.secret_sealed and dest.secret_sealed
    assert unseal(dest.secret_sealed, purpose=rd.SECRET_PURPOSE) == PASSWORD
    page = ml_admin_client.get(f"/admin/clinical/resultdestination/{dest.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert PASSWORD not in html and dest.secret_sealed not in html
    # Saving the form without a new secret keeps the stored one.
    form = {"client": pacs.client.pk, "name": "pacs-stow", "kind": "dicomweb", "enabled": "on",
            "url": "https://pacs.example.org/dicom-web/", "auth": "basic", "username": "radviewer",
            "secret": "", "host": "", "port": "", "called_ae": "", "calling_ae": "RADVIEWER"}
    response = ml_admin_client.post(f"/admin/clinical/resultdestination/{dest.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    dest.refresh_from_db()
    assert unseal(dest.secret_sealed, purpose=rd.SECRET_PURPOSE) == PASSWORD
    saved = AuditEvent.objects.filter(action="result_destination.saved")
    assert saved.count() == 2 and all(PASSWORD not in json.dumps(e.details) for e in saved)


@pytest.mark.parametrize(("fields", "field"), [
    ({"kind": "dicomweb", "url": "ftp://pacs/"}, "url"),
    ({"kind": "dicomweb", "url": "https://pacs/", "auth": "basic", "username": ""}, "username"),
    ({"kind": "dicomweb", "url": "https://pacs/", "auth": "bearer"}, "secret"),
    ({"kind": "dimse", "host": "", "port": 104, "called_ae": "PACS"}, "host"),
    ({"kind": "dimse", "host": "pacs", "port": 70000, "called_ae": "PACS"}, "port"),
    ({"kind": "dimse", "host": "pacs", "port": 104, "called_ae": "A-TITLE-FAR-TOO-LONG"}, "called_ae"),
    ({"kind": "dimse", "host": "pacs", "port": 104, "called_ae": "PACS", "calling_ae": ""}, "calling_ae"),
    ({"kind": "smoke-signal"}, "kind"),
])
def test_bad_destinations_are_refused_and_nothing_saved(pacs, fields, field):
    with pytest.raises(ValidationError) as caught:
        result_destination_save(destination=ResultDestination(client=pacs.client, name="bad", **fields))
    assert field in caught.value.message_dict
    assert not ResultDestination.objects.exists()
    assert not AuditEvent.objects.filter(action="result_destination.saved").exists()


def test_the_admin_shows_the_delivery_log_from_the_client(pacs, production_model, stow_receiver, ml_admin_client,
                                                          django_capture_on_commit_callbacks):
    destination(pacs, stow_receiver(400).url)
    delivery = attempt(ResultDelivery.objects.get(study=triaged_dicom_study(pacs, django_capture_on_commit_callbacks)))
    clients = ml_admin_client.get("/admin/clinical/apiclient/").content.decode()
    link = re.search(r'href="([^"]*resultdelivery/\?destination__client__id__exact=\d+)"', clients)
    assert link, "the client list links to its result delivery log"
    log = ml_admin_client.get("/admin/clinical/resultdelivery/?destination__client__id__exact="
                              f"{pacs.client.pk}")
    assert log.status_code == 200
    html = log.content.decode()
    assert "Failed" in html and "HTTP 400" in html and delivery.study.uid in html
    assert ml_admin_client.get(f"/admin/clinical/resultdelivery/{delivery.pk}/change/").status_code == 200
