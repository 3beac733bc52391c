"""Signed webhooks: scheduled on the ready signal, HMAC-signed, retried on 5xx, logged per attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Prediction, Study, WebhookDelivery
from clinical.services.notifications import study_ready
from clinical.services.webhooks import WebhookRetryableError, sign, webhook_attempt, webhook_schedule
from clinical.tasks import run_prediction
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db


class Receiver:
    """A hospital's webhook endpoint on loopback that answers with the statuses it is given."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.requests = list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/radviewer-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def sent(monkeypatch) -> list[int]:
    """Delivery tasks the code queued (ids); the tests run the attempts themselves."""
    queued: list[int] = []
    monkeypatch.setattr("clinical.tasks.deliver_webhook.apply_async",
                        lambda kwargs: queued.append(kwargs["delivery_id"]))
    return queued


@pytest.fixture
def receiver():
    made = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(list(statuses)))
        return made[-1]

    yield make
    for r in made:
        r.close()


def ready_study(pacs, callback_url: str, django_capture_on_commit_callbacks) -> Study:
    response = pacs.post("/api/v1/studies/", {"files": [SimpleUploadedFile("a.png", chest_png(seed=41))],
                                              "callback_url": callback_url})
    assert response.status_code == 202, response.content
    study = Study.objects.get(uid=response.json()["uid"])
    # prediction stored -> study_ready on commit -> delivery row -> delivery task on commit
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=Prediction.objects.get(image__study=study).pk)
    return study


def verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300) -> bool:
    """What docs/integration.md tells receivers to do, verbatim in spirit."""
    timestamp = headers["X-RadViewer-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-RadViewer-Signature"])


def test_ready_study_is_delivered_signed(pacs, production_model, receiver, sent,
                                         django_capture_on_commit_callbacks):
    hook = receiver(200)
    study = ready_study(pacs, hook.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(study=study)
    assert sent == [delivery.pk] and delivery.status == "pending"
    webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    headers, body = hook.requests[0]
    assert verify(pacs.secret, headers, body)
    assert not verify("wrong-secret", headers, body)
    payload = json.loads(body)
    assert payload["event"] == "study.ready" and payload["study"]["uid"] == study.uid
    assert payload["study"]["images"][0]["prediction"]["status"] == "succeeded"
    assert headers["X-RadViewer-Delivery"] == str(delivery.pk)
    assert hashlib.sha256(body).hexdigest() == delivery.payload_sha256
    assert AuditEvent.objects.filter(action="webhook.delivered", actor_label="api:st-elsewhere-pacs").exists()


def test_same_result_is_announced_once(pacs, production_model, receiver, django_capture_on_commit_callbacks):
    study = ready_study(pacs, receiver().url, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks() as callbacks:
        study_ready(study_id=study.pk)  # the signal again, e.g. a duplicate task delivery
    assert WebhookDelivery.objects.filter(study=study).count() == 1 and callbacks == []


def test_server_error_is_retried_then_delivered(pacs, production_model, receiver, django_capture_on_commit_callbacks):
    hook = receiver(503, 200)
    study = ready_study(pacs, hook.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(study=study)
    with pytest.raises(WebhookRetryableError):
        webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("retrying", 1, 503)
    assert delivery.next_attempt_at is not None
    webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first, second = hook.requests
    assert first[1] == second[1]  # identical body on every attempt
    assert first[0]["X-RadViewer-Delivery"] == second[0]["X-RadViewer-Delivery"]


def test_client_error_fails_at_once_and_unreachable_gives_up(pacs, production_model, receiver, monkeypatch,
                                                             django_capture_on_commit_callbacks):
    hook = receiver(410)
    study = ready_study(pacs, hook.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(study=study)
    webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code) == ("failed", 410)

    monkeypatch.setattr("clinical.services.webhooks.MAX_ATTEMPTS", 2)
    closed = WebhookDelivery.objects.create(client=pacs.client, study=study, url="http://127.0.0.1:9/closed",
                                            payload="{}", payload_sha256="x")
    with pytest.raises(WebhookRetryableError):
        webhook_attempt(delivery_id=closed.pk)
    webhook_attempt(delivery_id=closed.pk)  # the last attempt records the failure instead of raising
    closed.refresh_from_db()
    assert closed.status == "failed" and closed.attempts == 2 and "gave up" in closed.error


def test_delivery_rechecks_the_url_in_production(pacs, production_model, receiver, settings,
                                                 django_capture_on_commit_callbacks):
    hook = receiver(200)
    study = ready_study(pacs, hook.url, django_capture_on_commit_callbacks)
    settings.PROFILE = "production"
    delivery = WebhookDelivery.objects.get(study=study)
    webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "loopback" in delivery.error and hook.requests == []


def test_no_callback_no_delivery_and_default_url_is_used(make_pacs, production_model, receiver,
                                                         django_capture_on_commit_callbacks):
    quiet = make_pacs(name="quiet")
    study = ready_study(quiet, "", django_capture_on_commit_callbacks)
    assert not WebhookDelivery.objects.exists()
    hook = receiver()
    quiet.client.default_callback_url = hook.url
    quiet.client.save()
    assert webhook_schedule(study_id=study.pk).url == hook.url


def test_signature_format():
    assert sign("s3cret", 1700000000, b"{}") == "sha256=" + hmac.new(
        b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
