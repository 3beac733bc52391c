"""STOW-RS and QIDO-RS at /dicomweb/ (PS3.18): parsing, per-instance outcomes, status codes."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from clinical.api.multipart import MultipartError, parse_content_type, split_multipart
from clinical.models import Image, Study
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db

STUDY = "1.2.826.0.1.3680043.8.498.500"
REFERENCED, FAILED, REASON, RETRIEVE, SOP_UID = "00081199", "00081198", "00081197", "00081190", "00081155"


def multipart(*parts: bytes | tuple[str, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    chunks = []
    for part in parts:
        ctype, data = part if isinstance(part, tuple) else ("application/dicom", part)
        chunks.append(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    body = b"preamble\r\n" + b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary="{boundary}"'


def stow(pacs, body: bytes, content_type: str, url: str = "/dicomweb/studies", **extra):
    return pacs.http.generic("POST", url, body, content_type=content_type, **pacs.auth, **extra)


def cxr(sop: str, study: str = STUDY) -> bytes:
    return make_cxr_dicom(rows=32, cols=32, study_uid=study, sop_uid=sop)


def test_parser_handles_quoting_preamble_and_empty_headers():
    ctype = parse_content_type('Multipart/Related; type="application/dicom"; boundary="a b;c"')
    assert ctype.media_type == "multipart/related" and ctype.params["boundary"] == "a b;c"
    body = b"--x\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--x\r\n\r\nTWO\r\n\r\n--x--"
    parts = split_multipart(body, "x")
    assert [p.body for p in parts] == [b"ONE", b"TWO\r\n"] and parts[1].content_type == ""


@pytest.mark.parametrize("body", [b"--x\r\n\r\nno end", b"no boundary at all", b"--xjunk\r\n\r\nA\r\n--x--"])
def test_parser_refuses_truncated_or_foreign_bodies(body):
    with pytest.raises(MultipartError):
        split_multipart(body, "x")


def test_stow_stores_all_and_answers_with_the_senders_uids(pacs, production_model):
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.501"), cxr("1.2.826.0.1.3680043.8.498.502"))
    response = stow(pacs, body, ctype, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    data = response.json()
    sops = [item[SOP_UID]["Value"][0] for item in data[REFERENCED]["Value"]]
    assert sops == ["1.2.826.0.1.3680043.8.498.501", "1.2.826.0.1.3680043.8.498.502"]
    assert FAILED not in data and data[RETRIEVE]["Value"][0].endswith("/")
    study = Study.objects.get()
    assert (study.source, study.api_client_id, study.images.count()) == ("dicomweb", pacs.client.pk, 2)


def test_stow_partial_success_is_202_with_failure_reasons(pacs, production_model):
    no_pixels = make_cxr_dicom(rows=32, cols=32, with_pixels=False, study_uid=STUDY,
                               sop_uid="1.2.826.0.1.3680043.8.498.510")
    other_study = cxr("1.2.826.0.1.3680043.8.498.511", study="1.2.826.0.1.3680043.8.498.999")
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.512"), no_pixels, other_study, b"garbage",
                            ("image/png", chest_png()))
    response = stow(pacs, body, ctype, url=f"/dicomweb/studies/{STUDY}")
    assert response.status_code == 202, response.content
    failed = response.json()[FAILED]["Value"]
    assert [f[REASON]["Value"][0] for f in failed] == [0x0122, 0xA900, 0xC000, 0xC000]
    assert failed[0][SOP_UID]["Value"] == ["1.2.826.0.1.3680043.8.498.510"]
    assert Image.objects.count() == 1
    refused = AuditEvent.objects.get(action="dicomweb.stow_refused")
    assert refused.actor_label == f"api:{pacs.client.name}" and refused.details["stored"] == 1
    assert [f["reason"] for f in refused.details["failed"]] == ["0x0122", "0xA900", "0xC000", "0xC000"]
    assert AuditEvent.objects.filter(action="image.ingested", actor_label=refused.actor_label).count() == 1


def test_stow_all_failed_is_409_and_xml_on_request(pacs):
    body, ctype = multipart(b"garbage")
    response = stow(pacs, body, ctype, HTTP_ACCEPT="application/dicom+xml")
    assert response.status_code == 409
    assert response["Content-Type"].startswith("application/dicom+xml")
    root = ET.fromstring(response.content)  # noqa: S314 (our own response)
    assert root.tag == "NativeDicomModel"
    reason = root.find(".//DicomAttribute[@tag='00081197']/Value")
    assert int(reason.text) == 0xC000


@pytest.mark.parametrize(("ctype", "status"), [
    ("application/dicom", 415),
    ('multipart/related; type="application/dicom+xml"; boundary=x', 415),
    ('multipart/related; type="application/dicom"', 400),
    ('multipart/related; type="application/dicom"; boundary=x', 400),
])
def test_stow_wrong_media_type_or_malformed_body(pacs, ctype, status):
    response = stow(pacs, b"--x\r\nnot closed", ctype)
    assert response.status_code == status, response.content


def test_stow_too_large_is_413(pacs, settings):
    settings.MAX_UPLOAD_BYTES = 1024
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.520"))
    assert stow(pacs, body, ctype).status_code == 413


def test_stow_needs_submit_scope_and_accepts_basic_auth(pacs, make_pacs, production_model):
    reader = make_pacs(name="reader", scopes="read")
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.530"))
    assert stow(reader, body, ctype).status_code == 403
    basic = base64.b64encode(f"{pacs.client.name}:{pacs.token}".encode()).decode()
    response = pacs.http.generic("POST", "/dicomweb/studies", body, content_type=ctype,
                                 HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200


def test_stow_of_another_senders_study_is_refused(pacs, make_pacs, production_model):
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.540"))
    assert stow(pacs, body, ctype).status_code == 200
    other = make_pacs(name="other-pacs")
    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.541"))
    response = stow(other, body, ctype)
    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0][REASON]["Value"] == [0x0124]


def test_qido_lists_own_studies_with_results_by_original_uid(pacs, production_model):
    from clinical.tasks import run_prediction

    body, ctype = multipart(cxr("1.2.826.0.1.3680043.8.498.550"))
    stow(pacs, body, ctype)
    assert pacs.get("/dicomweb/studies").json() == []  # no result yet
    for image in Image.objects.all():
        run_prediction(prediction_id=image.predictions.get().pk)
    found = pacs.get("/dicomweb/studies", data={"StudyInstanceUID": STUDY}).json()
    assert [m["0020000D"]["Value"][0] for m in found] == [STUDY]
    assert pacs.get("/dicomweb/studies", data={"StudyInstanceUID": "1.2.3"}).json() == []
