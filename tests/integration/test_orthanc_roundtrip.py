"""A real PACS (Orthanc + its DICOMweb plugin) pushes a study to RadViewer and files the SR.

Orthanc runs as a subprocess on free loopback ports with a throw-away configuration; RadViewer
is pytest-django's live server with a real Celery worker on the same test database. Path:
Orthanc REST upload -> Orthanc STOW-RS client (HTTP Basic: client name + token) -> RadViewer
ingest -> worker triage -> RadViewer SR over the REST API -> stored back into Orthanc, where
it must be filed under the ORIGINAL study: the same Orthanc study resource (Orthanc keys
studies by Patient ID + Study Instance UID, so this also proves the SR carries the original
patient module re-identified from the protected mapping, not the pseudonym).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
import requests
from django.conf import settings

from clinical.services.api_clients import api_client_create
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.dicom_validation import assert_valid_dicom
from tests.support.services import free_port, require
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

ORTHANC_CANDIDATES = ("Orthanc", "/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")
STUDY_UID = "1.2.826.0.1.3680043.8.498.7001"
SOP_UID = "1.2.826.0.1.3680043.8.498.7003"


def _find(candidates) -> str | None:
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if path:
            return path
    return None




@pytest.fixture
def orthanc(tmp_path: Path, live_server):
    binary, plugin = _find(ORTHANC_CANDIDATES), _find(PLUGIN_CANDIDATES)
    require(binary is not None and plugin is not None, "Orthanc with the DICOMweb plugin (apt: orthanc orthanc-dicomweb)")
    issued = api_client_create(name="orthanc-test", scopes="submit,read")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "RADVIEWER-TEST",
        "StorageDirectory": str(tmp_path / "storage"),
        "IndexDirectory": str(tmp_path / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "RVTEST",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpTimeout": 60,
        "Plugins": [plugin],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "Servers": {"radviewer": {
                "Url": f"{live_server.url}/dicomweb/",
                "Username": issued.client.name,
                "Password": issued.token,
                # Django's live server (wsgiref) cannot read chunked request bodies; gunicorn can.
                "ChunkedTransfers": False,
            }},
        },
    }
    config_path = tmp_path / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(tmp_path / 'orthanc.log').read_text()[-3000:]}")
        try:
            return requests.get(f"{base}/system", timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(up, timeout=60, what="Orthanc /system")
        yield {"url": base, "token": issued.token, "log": tmp_path / "orthanc.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_orthanc_pushes_over_stow_and_files_the_sr_under_the_original_study(orthanc, live_server, production_model):
    env = {"RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI}
    pacs, api = orthanc["url"], live_server.url
    bearer = {"Authorization": f"Bearer {orthanc['token']}"}
    dicom = make_cxr_dicom(rows=128, cols=128, study_uid=STUDY_UID, sop_uid=SOP_UID, accession="ACC-ORTHANC")

    with WorkerProcess(queues="inference,default", extra_env=env) as worker:
        uploaded = requests.post(f"{pacs}/instances", data=dicom, timeout=30).json()
        sent = requests.post(f"{pacs}/dicom-web/servers/radviewer/stow",
                             json={"Resources": [uploaded["ParentStudy"]]}, timeout=120)
        assert sent.ok, (sent.status_code, sent.text, orthanc["log"].read_text()[-3000:])

        def finished():
            page = requests.get(f"{api}/api/v1/studies/", params={"study_instance_uid": STUDY_UID},
                                headers=bearer, timeout=10).json()
            done = [s for s in page["results"] if s["status"] in ("awaiting_review", "failed")]
            return done[0] if done else None

        study = wait_until(finished, timeout=120, interval=1, what="triage of the pushed study")
        assert study["status"] == "awaiting_review", worker.log()[-3000:]

    sr_response = requests.get(study["links"]["sr"], headers=bearer, timeout=30)
    assert sr_response.status_code == 200, sr_response.text
    assert_valid_dicom(sr_response.content)
    sr = pydicom.dcmread(io.BytesIO(sr_response.content))
    assert sr.StudyInstanceUID == STUDY_UID
    assert sr.PatientID == "MRN123"  # dicom_factory's default patient, re-identified for its PACS
    assert sr.PatientIdentityRemoved == "NO"  # ...so it does not claim to be de-identified
    stored = requests.post(f"{pacs}/instances", data=sr_response.content, timeout=30)
    assert stored.ok, stored.text
    assert stored.json()["ParentStudy"] == uploaded["ParentStudy"], "SR filed as another study"
    study_instances = requests.get(f"{pacs}/studies/{uploaded['ParentStudy']}/instances", timeout=30).json()
    assert len(study_instances) == 2

    found = requests.post(f"{pacs}/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": STUDY_UID}},
                          timeout=30).json()
    assert len(found) == 2
    modalities = set()
    for instance in found:
        tags = requests.get(f"{pacs}/instances/{instance}/simplified-tags", timeout=30).json()
        assert tags["StudyInstanceUID"] == STUDY_UID
        modalities.add(tags["Modality"])
    assert modalities == {"DX", "SR"}
    sr_tags = requests.get(f"{pacs}/instances/{stored.json()['ID']}/simplified-tags", timeout=30).json()
    referenced = sr_tags["CurrentRequestedProcedureEvidenceSequence"][0]["ReferencedSeriesSequence"][0]
    assert referenced["ReferencedSOPSequence"][0]["ReferencedSOPInstanceUID"] == SOP_UID
