"""Orthanc with its DEFAULT configuration stores into RadViewer served by gunicorn.

Orthanc's DICOMweb client streams its STOW-RS bodies (``ChunkedTransfers`` defaults to true):
the only configuration added to Orthanc's defaults is the DICOMweb server that points at
RadViewer (plus the folders, ports and plugin a throw-away instance needs). RadViewer runs as
``make run`` serves it: gunicorn on ``radviewer.wsgi``, with a real Celery worker. The study
must land and be triaged.
"""

from __future__ import annotations

import pytest
import requests

from clinical.models import Study
from clinical.services.api_clients import api_client_create
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.orthanc import OrthancProcess
from tests.support.server import GunicornServer
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

STUDY_UID = "1.2.826.0.1.3680043.8.498.7101"


def test_orthanc_defaults_stow_a_study_chunked_and_it_is_triaged(tmp_path, production_model):
    issued = api_client_create(name="orthanc-defaults", scopes="submit,read")
    dicoms = [make_cxr_dicom(rows=128, cols=128, study_uid=STUDY_UID, sop_uid=f"{STUDY_UID}.{n}",
                             accession="ACC-CHUNKED") for n in (1, 2)]
    with GunicornServer() as server, WorkerProcess(queues="inference,default") as worker:
        servers = {"radviewer": {"Url": f"{server.url}/dicomweb/", "Username": issued.client.name,
                                 "Password": issued.token}}
        with OrthancProcess(tmp_path / "orthanc", extra={"DicomWeb": {"Servers": servers}}) as pacs:
            parent = None
            for data in dicoms:
                parent = requests.post(f"{pacs.url}/instances", data=data, timeout=30).json()["ParentStudy"]
            sent = requests.post(f"{pacs.url}/dicom-web/servers/radviewer/stow", json={"Resources": [parent]},
                                 timeout=120)
            assert sent.ok, (sent.status_code, sent.text, pacs.log()[-3000:], server.log()[-3000:])
            # Orthanc really streamed: gunicorn's access log has no refusal, the body was chunked.
            assert " 411 " not in server.log()

        def triaged():
            study = Study.objects.filter(api_client=issued.client).first()
            return study if study and study.status in (Study.Status.AWAITING_REVIEW, Study.Status.FAILED) else None

        study = wait_until(triaged, timeout=180, interval=1, what="triage of the study Orthanc sent")
        assert study.status == Study.Status.AWAITING_REVIEW, worker.log()[-3000:]
        assert study.images.count() == 2
        assert all(img.latest_prediction().status == "succeeded" for img in study.images.all())
