"""STOW-RS with the broker down (issue 13 item 1), as the REST test in test_prediction_faults
does for POST /api/v1/studies/: a real redis-server of the test's own, not running at the
submission. The rows are committed before the message is sent, so STOW-RS answers 200 (the
documented "accepted means it will be triaged"), a resend of the same instance is linked to
the stuck prediction rather than stored again, and once Redis and a worker (with beat) are
up the sweeper re-sends the message and the study is triaged, once.
"""

from __future__ import annotations

import pytest

from clinical.models import Image, Prediction, Study
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.integration.test_prediction_faults import FAST_SWEEP, _finished
from tests.support.brokers import OwnRedis, celery_broker
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.services]

STUDY = "1.2.826.0.1.3680043.8.498.9100"
SOPS = ("1.2.826.0.1.3680043.8.498.9101", "1.2.826.0.1.3680043.8.498.9102")
BOUNDARY = "stow-broker-down"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
REFERENCED, FAILED = "00081199", "00081198"


@pytest.fixture
def pacs():
    from django.test import Client

    from clinical.services.api_clients import api_client_create

    issued = api_client_create(name="stow-fault-pacs", scopes="submit,read")
    return Client(HTTP_AUTHORIZATION=f"Bearer {issued.token}")


@pytest.fixture
def own_redis(tmp_path):
    redis = OwnRedis(tmp_path)
    yield redis
    redis.stop()


def _body(*instances: bytes) -> bytes:
    parts = [f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
             for data in instances]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _stow(pacs, body: bytes):
    return pacs.generic("POST", "/dicomweb/studies", body, content_type=CONTENT_TYPE,
                        HTTP_ACCEPT="application/dicom+json")


def test_stow_while_the_broker_is_down_is_accepted_and_triaged_once_it_is_back(pacs, production_model, own_redis):
    instances = [make_cxr_dicom(rows=96, cols=96, study_uid=STUDY, sop_uid=sop) for sop in SOPS]
    with celery_broker(own_redis.url):  # nothing listens on that port yet
        first = _stow(pacs, _body(*instances))
        resend = _stow(pacs, _body(instances[0]))
    assert first.status_code == 200, first.content
    stored = [item["00081155"]["Value"][0] for item in first.json()[REFERENCED]["Value"]]
    assert stored == list(SOPS) and FAILED not in first.json()
    assert resend.status_code == 200, resend.content  # linked to the stored instance
    assert Study.objects.count() == 1 and Image.objects.count() == 2
    assert Prediction.objects.count() == 2  # the resend added no prediction
    assert set(Prediction.objects.values_list("status", flat=True)) == {Prediction.Status.QUEUED}

    own_redis.start()
    with WorkerProcess(queues="inference,default", broker_url=own_redis.url, beat=True,
                       extra_env=FAST_SWEEP) as worker:
        predictions = wait_until(_finished(), timeout=120, what="both predictions finished")
        log = worker.log()
    for p in predictions:
        assert p.status == Prediction.Status.SUCCEEDED, (p.failure_reason, log[-3000:])
        assert p.attempts == 1
    assert "clinical.predictions_recover" in log
    assert Study.objects.get().status == Study.Status.AWAITING_REVIEW


def test_stow_with_the_broker_down_and_a_refused_instance_leaves_only_the_accepted_one(
        pacs, production_model, own_redis):
    good = make_cxr_dicom(rows=64, cols=64, study_uid=STUDY, sop_uid=SOPS[0])
    no_pixels = make_cxr_dicom(rows=64, cols=64, study_uid=STUDY, sop_uid=SOPS[1], with_pixels=False)
    with celery_broker(own_redis.url):
        response = _stow(pacs, _body(good, no_pixels))
    assert response.status_code == 202, response.content  # one stored, one refused
    body = response.json()
    assert [i["00081155"]["Value"][0] for i in body[REFERENCED]["Value"]] == [SOPS[0]]
    assert [i["00081197"]["Value"][0] for i in body[FAILED]["Value"]] == [0x0122]
    assert Image.objects.count() == 1 and Prediction.objects.get().status == Prediction.Status.QUEUED

    own_redis.start()
    with WorkerProcess(queues="inference,default", broker_url=own_redis.url, beat=True, extra_env=FAST_SWEEP):
        [done] = wait_until(_finished(), timeout=120, what="prediction finished")
    assert done.status == Prediction.Status.SUCCEEDED and done.attempts == 1
