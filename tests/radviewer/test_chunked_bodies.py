"""Chunked request bodies (``Transfer-Encoding: chunked``, Orthanc's DICOMweb default) are read
under gunicorn with the same size limit as bodies sent with a Content-Length.

The wrapper (``radviewer.lib.wsgi``) is tested on its own, then through a real gunicorn
serving ``radviewer.wsgi`` with raw ``http.client`` requests: STOW-RS and REST, each within
and over the limit (413 ``too_large``, nothing stored).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import uuid

import pytest
from django.test import override_settings

from clinical.models import Image, Study
from clinical.services.api_clients import api_client_create
from radviewer.lib.wsgi import ChunkedBodyMiddleware, chunked_body_cap
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.server import GunicornServer

LIMIT = 300_000  # the served app's RADVIEWER_MAX_UPLOAD_BYTES


def _app(seen: dict):
    def app(environ, start_response):
        seen["length"] = environ.get("CONTENT_LENGTH")
        seen["body"] = environ["wsgi.input"].read()
        seen["te"] = environ.get("HTTP_TRANSFER_ENCODING")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return app


def _call(app, environ) -> tuple[str, bytes]:
    status = {}

    def start_response(s, headers):
        status["s"] = s

    body = b"".join(app(environ, start_response))
    return status["s"], body


def test_a_dechunked_body_gets_its_length_and_same_bytes():
    seen: dict = {}
    payload = bytes(range(256)) * 4000
    status, _ = _call(ChunkedBodyMiddleware(_app(seen)), {
        "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True, "wsgi.input": io.BytesIO(payload)})
    assert status == "200 OK"
    assert seen == {"length": str(len(payload)), "body": payload, "te": None}


@override_settings(MAX_UPLOAD_BYTES=10_000, DATA_UPLOAD_MAX_MEMORY_SIZE=5_000)
def test_an_over_long_chunked_body_is_read_to_the_cap_plus_one_byte_only():
    seen: dict = {}
    cap = chunked_body_cap()
    stream = io.BytesIO(b"x" * (cap + 500_000))
    _call(ChunkedBodyMiddleware(_app(seen)), {
        "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True, "wsgi.input": stream})
    assert seen["length"] == str(cap + 1) and len(seen["body"]) == cap + 1
    assert stream.tell() == cap + 1  # the rest is left to the server to discard


def test_a_server_that_cannot_dechunk_gets_411_json_not_an_empty_body():
    seen: dict = {}
    status, body = _call(ChunkedBodyMiddleware(_app(seen)), {
        "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"abc")})
    assert status.startswith("411") and json.loads(body)["code"] == "length_required"
    assert seen == {}


def test_bodies_with_a_length_pass_untouched():
    seen: dict = {}
    stream = io.BytesIO(b"hello")
    _call(ChunkedBodyMiddleware(_app(seen)), {"CONTENT_LENGTH": "5", "wsgi.input": stream,
                                                "wsgi.input_terminated": True})
    assert seen["length"] == "5" and seen["body"] == b"hello"


# --- through a real gunicorn ------------------------------------------------------------------


def _chunked_post(url: str, path: str, body: bytes, headers: dict, step: int = 8192) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.putrequest("POST", path)
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            for start in range(0, len(body), step):
                piece = body[start:start + step]
                conn.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before the whole body was sent (413): read its answer
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _stow_body(*instances: bytes, boundary: str = "chunky") -> tuple[bytes, str]:
    parts = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + d + b"\r\n"
                     for d in instances)
    return parts + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _form_body(name: str, data: bytes, boundary: str = "formchunks") -> tuple[bytes, str]:
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/dicom\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_gunicorn_takes_chunked_stow_and_rest_bodies_with_the_same_limit():
    issued = api_client_create(name="chunky-pacs", scopes="submit,read")
    basic = base64.b64encode(f"{issued.client.name}:{issued.token}".encode()).decode()
    with GunicornServer(extra_env={"RADVIEWER_MAX_UPLOAD_BYTES": str(LIMIT)}) as server:
        # STOW-RS, chunked, within the limit: stored.
        study_uid = _uid()
        body, ctype = _stow_body(make_cxr_dicom(rows=96, cols=96, study_uid=study_uid, sop_uid=_uid()),
                                 make_cxr_dicom(rows=96, cols=96, study_uid=study_uid, sop_uid=_uid()))
        assert len(body) < LIMIT
        status, answer = _chunked_post(server.url, "/dicomweb/studies", body,
                                       {"Content-Type": ctype, "Authorization": f"Basic {basic}",
                                        "Accept": "application/dicom+json"})
        assert status == 200, (answer, server.log()[-2000:])
        assert len(answer["00081199"]["Value"]) == 2
        assert Image.objects.filter(study__api_client=issued.client).count() == 2

        # REST submit, chunked multipart/form-data, within the limit: accepted.
        data = make_cxr_dicom(rows=96, cols=96, study_uid=_uid(), sop_uid=_uid())
        body, ctype = _form_body("one.dcm", data)
        status, answer = _chunked_post(server.url, "/api/v1/studies/", body,
                                       {"Content-Type": ctype, "Authorization": f"Bearer {issued.token}"})
        assert status == 202, (answer, server.log()[-2000:])
        assert Study.objects.filter(api_client=issued.client).count() == 2

        before = (Study.objects.count(), Image.objects.count())
        # Over the limit, chunked: 413 too_large, as with a Content-Length; nothing stored.
        big = make_cxr_dicom(rows=512, cols=512, study_uid=_uid(), sop_uid=_uid())  # 16-bit: ~512 KB
        assert len(big) > LIMIT
        body, ctype = _stow_body(big)
        status, answer = _chunked_post(server.url, "/dicomweb/studies", body,
                                       {"Content-Type": ctype, "Authorization": f"Basic {basic}"})
        assert (status, answer.get("code")) == (413, "too_large"), answer
        body, ctype = _form_body("big.dcm", big)
        status, answer = _chunked_post(server.url, "/api/v1/studies/", body,
                                       {"Content-Type": ctype, "Authorization": f"Bearer {issued.token}"})
        assert (status, answer.get("code")) == (413, "too_large"), answer
        assert (Study.objects.count(), Image.objects.count()) == before

        # A chunked body cut short (the sender died mid-stream) is refused, nothing half-stored.
        body, ctype = _stow_body(make_cxr_dicom(rows=96, cols=96, study_uid=_uid(), sop_uid=_uid()))
        host, port = server.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/dicomweb/studies")
        for name, value in {"Content-Type": ctype, "Authorization": f"Basic {basic}",
                            "Transfer-Encoding": "chunked"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        half = body[: len(body) // 2]
        conn.send(f"{len(body):X}\r\n".encode() + half)  # announces more than it sends
        conn.sock.shutdown(1)  # SHUT_WR: the sender is gone
        response = conn.getresponse()
        assert response.status == 400, response.read()
        conn.close()
        assert (Study.objects.count(), Image.objects.count()) == before
