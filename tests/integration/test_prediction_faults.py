"""Nothing lost, nothing stuck: real brokers that are down, real workers that are killed.

- Broker down at submission: the answer is still "accepted" (the rows are committed), and
  once a broker and a worker are back, the sweeper (clinical.predictions_recover, run by
  a real embedded beat) re-sends the message and the study is triaged, exactly once.
- Worker main process SIGKILLed during a prediction: the reaper re-queues it and a new
  worker finishes it (embedded filesystem broker and Redis).
- The viewer's Retry, through its URL, re-sends a stuck prediction to a real worker.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from clinical.models import Image, Prediction, Study
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png
from tests.support.brokers import OwnRedis, celery_broker
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.services]

API = "/api/v1/studies/"
# Beat in the worker runs the sweeper every second; a message is overdue after a second.
FAST_SWEEP = {"RADVIEWER_PREDICTION_SWEEP_SECONDS": "1", "RADVIEWER_PREDICTION_REQUEUE_AFTER_SECONDS": "1"}


@pytest.fixture
def pacs():
    """An API client with a token, as a sending PACS."""
    from django.test import Client

    from clinical.services.api_clients import api_client_create

    issued = api_client_create(name="fault-pacs", scopes="submit,read")
    return Client(HTTP_AUTHORIZATION=f"Bearer {issued.token}")


@pytest.fixture
def own_redis(tmp_path):
    redis = OwnRedis(tmp_path)
    yield redis
    redis.stop()


def _finished(**filters):
    def check():
        rows = list(Prediction.objects.filter(**filters))
        done = (Prediction.Status.SUCCEEDED, Prediction.Status.FAILED)
        return rows if rows and all(p.status in done for p in rows) else None
    return check


def _upload(client, name: str, data: bytes):
    return client.post(reverse("clinical:upload_file"), {"file": SimpleUploadedFile(name, data)},
                       HTTP_HX_REQUEST="true")


def test_submissions_while_the_broker_is_down_are_accepted_and_triaged_once_it_is_back(
        pacs, radiologist_client, production_model, own_redis):
    png = chest_png(seed=31)
    with celery_broker(own_redis.url):  # nothing listens on that port yet
        rest = pacs.post(API, {"files": [SimpleUploadedFile("chest.png", png)]})
        page = _upload(radiologist_client, "IMG1.dcm", make_cxr_dicom(rows=96, cols=96))
        resend = pacs.post(API, {"files": [SimpleUploadedFile("chest.png", png)]})
    # The rows are committed, so the answers say so; the sweeper sends the messages later.
    assert rest.status_code == 202, rest.content
    assert page.status_code == 201, page.content
    assert resend.status_code == 202 and resend.json()["uid"] == rest.json()["uid"]
    assert Prediction.objects.count() == 2  # the resend is deduplicated onto the queued row
    assert set(Prediction.objects.values_list("status", flat=True)) == {Prediction.Status.QUEUED}

    own_redis.start()
    with celery_broker(own_redis.url):
        # Two more messages for one prediction: a double delivery must run it once.
        one = Prediction.objects.filter(image__study__uid=rest.json()["uid"]).get()
        run_prediction.apply_async(kwargs={"prediction_id": one.pk})
        run_prediction.apply_async(kwargs={"prediction_id": one.pk})
    with WorkerProcess(queues="inference,default", broker_url=own_redis.url, beat=True,
                       extra_env=FAST_SWEEP) as worker:
        predictions = wait_until(_finished(), timeout=120, what="both predictions finished")
        log = worker.log()
    for p in predictions:
        assert p.status == Prediction.Status.SUCCEEDED, (p.failure_reason, log[-3000:])
        assert p.attempts == 1
    assert "clinical.predictions_recover" in log
    assert set(Study.objects.values_list("status", flat=True)) == {Study.Status.AWAITING_REVIEW}


@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_a_prediction_whose_worker_is_killed_is_requeued_and_finished_by_another(
        broker, radiologist_client, production_model, own_redis):
    if broker == "redis":
        own_redis.start()
    url = own_redis.url if broker == "redis" else "filesystem://"
    with celery_broker(url), WorkerProcess(queues="inference,default", broker_url=url) as first:
        assert _upload(radiologist_client, "IMG1.dcm", make_cxr_dicom(rows=512, cols=512)).status_code == 201
        image = Image.objects.get()
        wait_until(lambda: Prediction.objects.filter(image=image, status=Prediction.Status.RUNNING).exists(),
                   timeout=60, interval=0.02, what="prediction running")
        first.proc.send_signal(signal.SIGKILL)  # the main process (solo pool: it runs the task)
        first.proc.wait()
    stuck = Prediction.objects.get(image=image)
    assert (stuck.status, stuck.attempts) == (Prediction.Status.RUNNING, 1), first.log()[-2000:]

    env = {**FAST_SWEEP, "RADVIEWER_PREDICTION_STALE_SECONDS": "3"}
    with WorkerProcess(queues="inference,default", broker_url=url, beat=True, extra_env=env) as second:
        [done] = wait_until(_finished(image=image), timeout=120, what="prediction finished")
        log = second.log()
    assert done.status == Prediction.Status.SUCCEEDED, (done.failure_reason, log[-3000:])
    assert done.attempts == 2
    assert Study.objects.get().status == Study.Status.AWAITING_REVIEW


def test_a_prediction_failed_after_its_last_attempt_says_why(radiologist_client, production_model, own_redis):
    own_redis.start()
    with celery_broker(own_redis.url), WorkerProcess(queues="inference,default",
                                                     broker_url=own_redis.url) as first:
        assert _upload(radiologist_client, "IMG1.dcm", make_cxr_dicom(rows=512, cols=512)).status_code == 201
        wait_until(lambda: Prediction.objects.filter(status=Prediction.Status.RUNNING).exists(),
                   timeout=60, interval=0.02, what="prediction running")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    env = {**FAST_SWEEP, "RADVIEWER_PREDICTION_STALE_SECONDS": "2", "RADVIEWER_PREDICTION_MAX_ATTEMPTS": "1"}
    with WorkerProcess(queues="default", broker_url=own_redis.url, beat=True, extra_env=env):
        [failed] = wait_until(_finished(), timeout=60, what="prediction failed")
    assert failed.status == Prediction.Status.FAILED
    assert "its worker stopped" in failed.failure_reason and "attempt 1 of 1" in failed.failure_reason
    assert Study.objects.get().status == Study.Status.FAILED


def test_retry_in_the_viewer_resends_a_stuck_prediction(radiologist_client, production_model, own_redis):
    with celery_broker(own_redis.url):  # down: the message is never sent
        assert _upload(radiologist_client, "IMG1.dcm", make_cxr_dicom(rows=96, cols=96)).status_code == 201
    image = Image.objects.get()
    time.sleep(1.2)  # older than the (overridden) deadline below: evidently never arrived
    own_redis.start()
    # No beat in this worker: only the reader's Retry can send it.
    with celery_broker(own_redis.url), override_settings(PREDICTION_REQUEUE_AFTER_SECONDS=1), \
            WorkerProcess(queues="inference,default", broker_url=own_redis.url) as worker:
        response = radiologist_client.post(reverse("clinical:prediction_retry", args=[image.study.uid, image.pk]),
                                           HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        [done] = wait_until(_finished(image=image), timeout=90, what="prediction finished")
        assert done.status == Prediction.Status.SUCCEEDED, (done.failure_reason, worker.log()[-3000:])
    assert Prediction.objects.count() == 1


