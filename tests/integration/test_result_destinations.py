"""The SR pushed to a real Orthanc by a real worker, over both protocols, and through an outage.

RadViewer's worker (``clinical.deliver_result``) sends the SR when triage is done:
- DICOMweb STOW-RS to Orthanc's DICOMweb plugin, with HTTP Basic credentials (the only
  configuration added to Orthanc's defaults: a registered user, authentication on);
- DICOM C-STORE via pynetdicom to Orthanc's DICOM port, with Orthanc's defaults (it accepts
  C-STORE from any AE: ``DicomAlwaysAllowStore`` true, ``DicomCheckCalledAet`` false).
Orthanc's REST API must then hold the SR instance, filed under the original Study Instance UID.
The outage: the C-STORE peer is down, deliveries are retried with back-off; once Orthanc is up
on that port the SR arrives.
"""

from __future__ import annotations

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from clinical.models import ResultDelivery, ResultDestination
from clinical.services.api_clients import api_client_create
from clinical.services.result_delivery import result_destination_save
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.orthanc import OrthancProcess, free_port
from tests.support.services import require
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]


def _pynetdicom() -> None:
    try:
        import pynetdicom  # noqa: F401
    except ImportError:
        require(False, "pynetdicom (pyproject.toml dependency)")


def _submit(token: str, study_uid: str) -> str:
    data = make_cxr_dicom(rows=96, cols=96, study_uid=study_uid, sop_uid=f"{study_uid}.1", accession="ACC-PUSH")
    response = Client().post("/api/v1/studies/", {"files": [SimpleUploadedFile("cxr.dcm", data)]},
                             HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202, response.content
    return response.json()["uid"]


def _delivered(study_uid: str, destination: ResultDestination, timeout: float = 180) -> ResultDelivery:
    def done():
        row = ResultDelivery.objects.filter(study__uid=study_uid, destination=destination).first()
        return row if row and row.status in ("delivered", "failed") else None

    return wait_until(done, timeout=timeout, interval=1, what=f"SR delivery to {destination.name}")


def _assert_sr_in(pacs: OrthancProcess, original_study_uid: str, delivery: ResultDelivery) -> None:
    instances = pacs.instances_of_study(original_study_uid)
    srs = [tags for tags in instances if tags.get("Modality") == "SR"]
    assert len(srs) == 1, instances
    assert srs[0]["SOPInstanceUID"] == delivery.sop_instance_uid
    assert srs[0]["StudyInstanceUID"] == original_study_uid
    assert srs[0]["PatientID"] == "MRN123"  # the source's patient, re-identified for its own PACS


def test_the_sr_reaches_orthanc_over_stow_rs_and_c_store(tmp_path, production_model):
    _pynetdicom()
    issued = api_client_create(name="orthanc-push", scopes="submit,read")
    with OrthancProcess(tmp_path / "stow", extra={"AuthenticationEnabled": True,
                                                  "RegisteredUsers": {"radviewer": "orthanc-pw-1"}},
                        auth=("radviewer", "orthanc-pw-1")) as web, \
            OrthancProcess(tmp_path / "dimse") as dimse:
        stow_dest = result_destination_save(destination=ResultDestination(
            client=issued.client, name="orthanc-stow", kind="dicomweb", url=f"{web.url}/dicom-web/",
            auth="basic", username="radviewer"), secret="orthanc-pw-1")
        store_dest = result_destination_save(destination=ResultDestination(
            client=issued.client, name="orthanc-cstore", kind="dimse", host="127.0.0.1", port=dimse.dicom_port,
            called_ae="ORTHANC", calling_ae="RADVIEWER"))
        original = "1.2.826.0.1.3680043.8.498.9901"
        with WorkerProcess(queues="inference,default") as worker:
            uid = _submit(issued.token, original)  # RadViewer's own (pseudonymous) study UID
            by_stow = _delivered(uid, stow_dest)
            by_store = _delivered(uid, store_dest)
        assert (by_stow.status, by_stow.response) == ("delivered", "HTTP 200"), (by_stow.last_error, worker.log()[-3000:])
        assert (by_store.status, by_store.response) == ("delivered", "C-STORE 0x0000"), by_store.last_error
        assert by_stow.trigger == by_store.trigger == "triage_done"
        _assert_sr_in(web, original, by_stow)
        _assert_sr_in(dimse, original, by_store)
        # Orthanc really checked the credentials: without them its DICOMweb answers 401.
        assert requests.get(f"{web.url}/dicom-web/studies", timeout=10).status_code == 401


def test_a_peer_that_is_down_is_retried_with_backoff_and_served_once_up(tmp_path, production_model):
    _pynetdicom()
    issued = api_client_create(name="orthanc-later", scopes="submit,read")
    port = free_port()
    dest = result_destination_save(destination=ResultDestination(
        client=issued.client, name="orthanc-down", kind="dimse", host="127.0.0.1", port=port, called_ae="ORTHANC"))
    original = "1.2.826.0.1.3680043.8.498.9902"
    with WorkerProcess(queues="inference,default") as worker:
        uid = _submit(issued.token, original)

        def retrying():
            row = ResultDelivery.objects.filter(study__uid=uid, destination=dest).first()
            return row if row and row.status == "retrying" and row.attempts >= 2 else None

        row = wait_until(retrying, timeout=180, interval=0.5, what="a retried delivery to the peer that is down")
        assert row.next_attempt_at is not None and "no association" in row.last_error
        with OrthancProcess(tmp_path / "late", dicom_port=port) as pacs:
            delivery = _delivered(uid, dest, timeout=240)
            assert delivery.status == "delivered", (delivery.last_error, worker.log()[-3000:])
            assert delivery.attempts > row.attempts
            _assert_sr_in(pacs, original, delivery)
