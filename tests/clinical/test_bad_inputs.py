"""The bad-input suite (issue 13): every surface a sender or a reader can reach with a malformed
request -- the upload page (web form), REST submission, feedback and the other JSON
endpoints, STOW-RS, QIDO-RS, and the reader's review form -- each case with its expected
status, its error code in the documented shape (docs/integration.md section 8: JSON
``{"code", "detail"}`` on the API; a page that says why on the web), and "nothing
half-saved": the rows of Study, Image, Prediction, Review, the write events of the audit log
and the stored files are the same after the request as before it.

Runs on the suite's database (SQLite by default, PostgreSQL with DATABASE_URL): PostgreSQL
refuses NUL and lone surrogates in text and out-of-range integers, where SQLite would not.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test import Client

from clinical.models import Image, Prediction, Review, Study
from clinical.services.api_clients import api_client_create, api_client_revoke
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom, with_undecodable_syntax
from tests.clinical.factories import ImageFactory, PredictionFactory, StudyFactory, chest_png

pytestmark = pytest.mark.django_db

# Audit actions that record a change; refusals, reads and auth failures may be logged.
WRITE_ACTIONS = {"study.submitted", "study.submission_replayed", "image.ingested", "image.duplicate_linked",
                 "review.created", "review.amended", "study.signed_off", "prediction.retried",
                 "attribution.requested"}
# A duplicate or replayed submission records that it was received, and links to what exists.
RESEND_ACTIONS = {"study.submitted", "study.submission_replayed", "image.duplicate_linked"}
MPEG2 = "1.2.840.10008.1.2.4.100"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no pixels
STUDY_UID = "1.2.826.0.1.3680043.8.498.7001"
OWN_STUDY = "2.25.111111111111111111"
OTHER_STUDY = "2.25.222222222222222222"


# ------------------------------------------------------------------ bodies


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG whose header says side x side (900 Mpx decoded, ~110 kB on disk)."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def header_only_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height with no image data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def dicom_with_header_dims(rows: int, cols: int) -> bytes:
    """A real DX instance whose Rows/Columns claim far more than its 16x16 pixel data."""
    ds = pydicom.dcmread(io.BytesIO(make_cxr_dicom(rows=16, cols=16, bits=8)))
    ds.Rows, ds.Columns = rows, cols
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("chest.png", chest_png(seed=3))
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


BODIES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "pdf": lambda: b"%PDF-1.7\n1 0 obj <<>> endobj\n" * 10,
    "text": lambda: b"just some text, not an image\n" * 20,
    "html": lambda: b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    "zip": zip_bytes,
    "elf": lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 200,
    "gif": lambda: b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
                   b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
    "png_truncated": lambda: truncated(chest_png(seed=4)),
    "png_header_only": lambda: header_only_png(64, 64),
    "png_bomb": bomb_png,
    "png_header_huge": lambda: header_only_png(2**31 - 1, 2**31 - 1),
    "jpeg_truncated": lambda: truncated(chest_png(seed=5, fmt="JPEG"), 0.3),
    "dicom_truncated": lambda: truncated(make_cxr_dicom(rows=64, cols=64), 0.6),
    "dicom_header_only": lambda: make_cxr_dicom(rows=64, cols=64)[:132],
    "dicom_no_pixels": lambda: make_cxr_dicom(rows=16, cols=16, with_pixels=False),
    "dicom_sr_class": lambda: make_cxr_dicom(rows=16, cols=16, with_pixels=False, extra={"SOPClassUID": SR_CLASS}),
    "dicom_mpeg2": lambda: with_undecodable_syntax(make_cxr_dicom(rows=16, cols=16, bits=8), MPEG2),
    "dicom_huge_dims": lambda: dicom_with_header_dims(60_000, 60_000),
    "dicom_multiframe_cxr": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, frames=3),
    "dicom_preamble_junk": lambda: b"\xff" * 128 + b"DICM" + b"\x00" * 64,
    "dicom_nul_in_uid": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, study_uid="1.2.3\x004",
                                               sop_uid="1.2.3.5"),
    "dicom_bad_uid": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, study_uid="not a uid!",
                                            sop_uid="also;not'a\"uid"),
    "dicom_long_uid": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, study_uid="1." + "2" * 200),
    "dicom_nul_in_accession": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, accession="A\x00B"),
    "dicom_long_accession": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, accession="A" * 200),
    "dicom_long_patient_id": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, patient_id="P" * 500),
    "dicom_nul_in_patient_name": lambda: make_cxr_dicom(rows=16, cols=16, bits=8, patient_name="Doe\x00^Jane"),
}


def body(name: str) -> bytes:
    return BODIES[name]()


def multipart_form(field_name: str, filename: str, data: bytes, boundary: str = "b0", extra: str = "") -> bytes:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n' \
           f"Content-Type: application/octet-stream\r\n\r\n"
    return head.encode() + data + f"\r\n{extra}--{boundary}--\r\n".encode()


def stow_body(*parts: tuple[str, bytes], boundary: str = "s0") -> bytes:
    chunks = [f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n" for ctype, data in parts]
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=s0'
FORM_TYPE = "multipart/form-data; boundary=b0"


# ------------------------------------------------------------------ the cases


@dataclass
class Case:
    id: str
    method: str
    path: str  # {own} / {other} / {image}: the sender's study, another sender's, its image id
    status: int
    code: str = ""  # the JSON error code (API), or a text the page must show (web)
    who: str = "pacs"  # pacs, readonly, other, anon, badtoken, revoked, reader, mladmin
    body: bytes | Callable[[], bytes] | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    before: Callable[[Any], None] | None = None  # runs before the snapshot (a duplicate's first send)
    html: bool = False
    stow_reason: int | None = None  # STOW-RS: the Failure Reason of the (only) failed instance
    file_code: str = ""  # REST: the per-file code in ``files``
    resend: bool = False  # a duplicate: stores nothing new, but the resend itself is audited


NUL_API_GETS = [
    "/api/v1/studies/?accession_number=%00", "/api/v1/studies/?accession_number=A%00",
    "/api/v1/studies/?study_instance_uid=1.2%003", "/api/v1/studies/?status=processing%00",
    "/api/v1/studies/?since=2025-01-01%00", "/api/v1/studies/?cursor=%00", "/api/v1/studies/?limit=5%00",
    "/api/v1/studies/?x%00y=1", "/api/v1/studies/2.25.1%002/", "/api/v1/studies/2.25.1%002/fhir/",
    "/api/v1/studies/2.25.1%002/sr/", "/api/v1/studies/2.25.1%002/heatmap.png",
    "/api/v1/studies/{own}/images/1%00/heatmap.png", "/api/v1/studies/{own}/?format=json%00",
    "/dicomweb/studies?StudyInstanceUID=%00", "/dicomweb/studies?StudyInstanceUID=1.2%003",
    "/dicomweb/studies?AccessionNumber=%00", "/dicomweb/studies?AccessionNumber=A%00B",
    "/dicomweb/studies?limit=1%00", "/dicomweb/studies?offset=%00", "/dicomweb/studies?Patient%00ID=1",
]
NUL_PAGE_GETS = [
    "/studies/2.25.1%002/", "/studies/2.25.1%002/status/", "/studies/2.25.1%002/next/",
    "/studies/2.25.1%002/provenance", "/studies/{own}/images/{image}/display.png?x=%00",
    "/worklist/?status=%00", "/worklist/?modality=DX%00", "/worklist/?predicted_class=lung%00",
    "/worklist/?since=2025-01-01%00", "/worklist/?page=1%00", "/upload/?next=%00",
]

CASES: list[Case] = []
CASES += [Case(f"nul-get-api-{i}", "GET", url, 400, "invalid_characters") for i, url in enumerate(NUL_API_GETS)]
CASES += [Case(f"nul-get-page-{i}", "GET", url, 400, "NUL", who="reader", html=True)
          for i, url in enumerate(NUL_PAGE_GETS)]
CASES += [
    Case("nul-post-feedback-uid", "POST", "/api/v1/studies/2.25.1%002/feedback/", 400, "invalid_characters",
         body=b'{"verdict": "agree"}', content_type="application/json"),
    Case("nul-post-rest-query", "POST", "/api/v1/studies/?accession_number=%00", 400, "invalid_characters",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("nul-post-stow-uid", "POST", "/dicomweb/studies/1.2%003", 400, "invalid_characters",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type=STOW_TYPE),
    Case("nul-post-upload-query", "POST", "/upload/file/?x=%00", 400, "NUL", who="reader", html=True,
         body=lambda: multipart_form("file", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("nul-post-review-uid", "POST", "/studies/2.25.1%002/images/1/reviews/", 400, "NUL", who="reader",
         html=True, body=b"verdict=agree", content_type="application/x-www-form-urlencoded"),
    Case("nul-post-signoff-uid", "POST", "/studies/2.25.1%002/sign-off/", 400, "NUL", who="reader", html=True),
]

# REST submission: one file in 'files', refused as a whole with its per-file reason.
REST_FILES = [
    ("empty", "e.png", 400, "empty_file"), ("pdf", "scan.png", 415, "unsupported_type"),
    ("pdf", "scan.dcm", 415, "unsupported_type"), ("text", "notes.png", 415, "unsupported_type"),
    ("html", "page.png", 415, "unsupported_type"), ("zip", "bundle.png", 415, "unsupported_type"),
    ("zip", "bundle.dcm", 415, "unsupported_type"), ("elf", "a.out.png", 415, "unsupported_type"),
    ("gif", "tiny.png", 415, "unsupported_type"), ("png_truncated", "cut.png", 422, "corrupt_image"),
    ("png_header_only", "hdr.png", 422, "corrupt_image"), ("png_bomb", "bomb.png", 422, "too_many_pixels"),
    ("png_header_huge", "huge.png", 422, "too_many_pixels"), ("jpeg_truncated", "cut.jpg", 422, "corrupt_image"),
    ("dicom_truncated", "cut.dcm", 422, "corrupt_dicom"), ("dicom_header_only", "hdr.dcm", 422, "corrupt_dicom"),
    ("dicom_no_pixels", "nopix.dcm", 422, "dicom_no_pixels"), ("dicom_sr_class", "sr.dcm", 422, "dicom_no_pixels"),
    ("dicom_mpeg2", "mpeg.dcm", 415, "unsupported_transfer_syntax"),
    ("dicom_huge_dims", "dims.dcm", 422, "too_many_pixels"),
    ("dicom_multiframe_cxr", "multi.dcm", 422, "multiframe_not_supported"),
    ("dicom_preamble_junk", "junk.dcm", 422, "corrupt_dicom"),
    ("dicom_nul_in_uid", "nuluid.dcm", 422, "corrupt_dicom"), ("dicom_bad_uid", "baduid.dcm", 422, "corrupt_dicom"),
    ("dicom_long_uid", "longuid.dcm", 422, "corrupt_dicom"),
    ("dicom_nul_in_accession", "nulacc.dcm", 422, "corrupt_dicom"),
    ("dicom_long_accession", "longacc.dcm", 422, "corrupt_dicom"),
    ("dicom_long_patient_id", "longpid.dcm", 422, "corrupt_dicom"),
    ("dicom_nul_in_patient_name", "nulname.dcm", 422, "corrupt_dicom"),
]
CASES += [Case(f"rest-file-{name}-{fname}", "POST", "/api/v1/studies/", status, "invalid_files",
               body=(lambda n=name, f=fname: multipart_form("files", f, body(n))), content_type=FORM_TYPE,
               file_code=fcode)
          for name, fname, status, fcode in REST_FILES]


def _two_studies() -> bytes:
    a = make_cxr_dicom(rows=16, cols=16, bits=8, study_uid="1.2.826.0.1.3680043.8.498.71",
                       sop_uid="1.2.826.0.1.3680043.8.498.711")
    b = make_cxr_dicom(rows=16, cols=16, bits=8, study_uid="1.2.826.0.1.3680043.8.498.72",
                       sop_uid="1.2.826.0.1.3680043.8.498.721")
    return (b'--b0\r\nContent-Disposition: form-data; name="files"; filename="a.dcm"\r\n\r\n' + a +
            b'\r\n--b0\r\nContent-Disposition: form-data; name="files"; filename="b.dcm"\r\n\r\n' + b + b"\r\n--b0--\r\n")


def _good_and_bad() -> bytes:
    return (b'--b0\r\nContent-Disposition: form-data; name="files"; filename="good.png"\r\n\r\n'
            + chest_png(seed=21) + b'\r\n--b0\r\nContent-Disposition: form-data; name="files"; '
            b'filename="bad.png"\r\n\r\n' + truncated(chest_png(seed=22)) + b"\r\n--b0--\r\n")


def _field(name: str, value: str) -> str:
    return f'--b0\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'


def _png_with(**fields: str) -> Callable[[], bytes]:
    return lambda: multipart_form("files", "c.png", chest_png(seed=30), extra="".join(
        _field(k, v) for k, v in fields.items()))


CASES += [
    Case("rest-no-files", "POST", "/api/v1/studies/", 400, "invalid",
         body=_field("accession_number", "A1").encode() + b"--b0--\r\n", content_type=FORM_TYPE),
    Case("rest-files-as-text-field", "POST", "/api/v1/studies/", 400, "invalid",
         body=_field("files", "not a file").encode() + b"--b0--\r\n", content_type=FORM_TYPE),
    Case("rest-json-body", "POST", "/api/v1/studies/", 415, "unsupported_media_type",
         body=b'{"files": []}', content_type="application/json"),
    Case("rest-text-body", "POST", "/api/v1/studies/", 415, "unsupported_media_type",
         body=b"files=a.png", content_type="text/plain"),
    Case("rest-urlencoded", "POST", "/api/v1/studies/", 415, "unsupported_media_type",
         body=b"files=a.png", content_type="application/x-www-form-urlencoded"),
    Case("rest-stow-type", "POST", "/api/v1/studies/", 415, "unsupported_media_type",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type=STOW_TYPE),
    Case("rest-no-boundary", "POST", "/api/v1/studies/", 400, "parse_error",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type="multipart/form-data"),
    Case("rest-empty-boundary", "POST", "/api/v1/studies/", 400, "parse_error",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type="multipart/form-data; boundary="),
    Case("rest-wrong-boundary", "POST", "/api/v1/studies/", 400, "invalid",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type="multipart/form-data; boundary=zz"),
    Case("rest-5000-char-name", "POST", "/api/v1/studies/", 400, "parse_error",
         body=lambda: multipart_form("files", "a" * 5000 + ".png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("rest-truncated-multipart", "POST", "/api/v1/studies/", 400, "invalid",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1))[:60], content_type=FORM_TYPE),
    Case("rest-empty-multipart", "POST", "/api/v1/studies/", 400, "invalid", body=b"", content_type=FORM_TYPE,
         headers={"CONTENT_TYPE": FORM_TYPE}),
    Case("rest-empty-no-type", "POST", "/api/v1/studies/", 415, "unsupported_media_type", body=b""),
    Case("rest-content-length-nan", "POST", "/api/v1/studies/", 400, "bad_content_length",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE,
         headers={"CONTENT_LENGTH": "many"}),
    Case("rest-content-length-huge", "POST", "/api/v1/studies/", 413, "too_large",
         body=b"x" * 10, content_type=FORM_TYPE, headers={"CONTENT_LENGTH": str(10**12)}),
    Case("rest-body-over-limit", "POST", "/api/v1/studies/", 413, "too_large",
         body=lambda: multipart_form("files", "big.png", chest_png(size=(200, 200), seed=9)),
         content_type=FORM_TYPE, settings={"MAX_UPLOAD_BYTES": 4096}),
    Case("rest-too-many-files", "POST", "/api/v1/studies/", 400, "invalid",
         body=lambda: b"".join(
             f'--b0\r\nContent-Disposition: form-data; name="files"; filename="f{i}.png"\r\n\r\n'.encode()
             + chest_png(seed=40 + i) + b"\r\n" for i in range(3)) + b"--b0--\r\n",
         content_type=FORM_TYPE, settings={"DATA_UPLOAD_MAX_NUMBER_FILES": 2}),
    Case("rest-mixed-studies", "POST", "/api/v1/studies/", 400, "mixed_studies",
         body=_two_studies, content_type=FORM_TYPE),
    Case("rest-one-good-one-bad", "POST", "/api/v1/studies/", 422, "invalid_files",
         body=_good_and_bad, content_type=FORM_TYPE, file_code="corrupt_image"),
    Case("rest-bad-priority", "POST", "/api/v1/studies/", 400, "invalid", body=_png_with(priority_hint="asap"),
         content_type=FORM_TYPE),
    Case("rest-callback-ftp", "POST", "/api/v1/studies/", 400, "invalid_callback_url",
         body=_png_with(callback_url="ftp://ris.example.org/hook"), content_type=FORM_TYPE),
    Case("rest-callback-loopback", "POST", "/api/v1/studies/", 400, "invalid_callback_url",
         body=_png_with(callback_url="https://127.0.0.1/hook"), content_type=FORM_TYPE,
         settings={"PROFILE": "production"}),
    Case("rest-callback-garbage", "POST", "/api/v1/studies/", 400, "invalid_callback_url",
         body=_png_with(callback_url="http//::nope"), content_type=FORM_TYPE),
    Case("rest-accession-too-long", "POST", "/api/v1/studies/", 400, "invalid",
         body=_png_with(accession_number="A" * 5000), content_type=FORM_TYPE),
    Case("rest-accession-nul", "POST", "/api/v1/studies/", 400, "invalid",
         body=_png_with(accession_number="A\x00B"), content_type=FORM_TYPE),
    Case("rest-idempotency-space", "POST", "/api/v1/studies/", 400, "invalid_idempotency_key",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE,
         headers={"HTTP_IDEMPOTENCY_KEY": "has space"}),
    Case("rest-idempotency-long", "POST", "/api/v1/studies/", 400, "invalid_idempotency_key",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE,
         headers={"HTTP_IDEMPOTENCY_KEY": "k" * 129}),
    Case("rest-idempotency-empty", "POST", "/api/v1/studies/", 400, "invalid_idempotency_key",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE,
         headers={"HTTP_IDEMPOTENCY_KEY": ""}),
    Case("rest-idempotency-nonascii", "POST", "/api/v1/studies/", 400, "invalid_idempotency_key",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE,
         headers={"HTTP_IDEMPOTENCY_KEY": "clé"}),
    Case("rest-file-in-other-senders-study", "POST", "/api/v1/studies/", 409, "study_of_another_sender",
         body=lambda: multipart_form("files", "dup.png", chest_png(seed=77)), content_type=FORM_TYPE,
         before=lambda w: w.send_as_other(chest_png(seed=77))),
]

# Duplicates: the second send links to the first study; nothing new is stored.
CASES += [
    Case("rest-duplicate-png", "POST", "/api/v1/studies/", 202, "", content_type=FORM_TYPE,
         body=lambda: multipart_form("files", "again.png", chest_png(seed=88)),
         before=lambda w: w.send_rest(multipart_form("files", "first.png", chest_png(seed=88)))),
    Case("rest-duplicate-dicom", "POST", "/api/v1/studies/", 202, "", content_type=FORM_TYPE,
         body=lambda: multipart_form("files", "again.dcm", make_cxr_dicom(rows=16, cols=16, bits=8,
                                                                         sop_uid="1.2.826.0.1.3680043.8.498.881")),
         before=lambda w: w.send_rest(multipart_form("files", "first.dcm", make_cxr_dicom(
             rows=16, cols=16, bits=8, sop_uid="1.2.826.0.1.3680043.8.498.881")))),
    Case("rest-idempotent-replay", "POST", "/api/v1/studies/", 202, "", content_type=FORM_TYPE,
         body=lambda: multipart_form("files", "other.png", chest_png(seed=90)),
         headers={"HTTP_IDEMPOTENCY_KEY": "key-1"},
         before=lambda w: w.send_rest(multipart_form("files", "first.png", chest_png(seed=89)),
                                      HTTP_IDEMPOTENCY_KEY="key-1")),
    Case("stow-duplicate-instance", "POST", "/dicomweb/studies", 200, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8,
                                                                     sop_uid="1.2.826.0.1.3680043.8.498.891"))),
         before=lambda w: w.send_stow(stow_body(("application/dicom", make_cxr_dicom(
             rows=16, cols=16, bits=8, sop_uid="1.2.826.0.1.3680043.8.498.891"))))),
    Case("upload-duplicate", "POST", "/upload/file/", 200, "", who="reader", html=True, content_type=FORM_TYPE,
         body=lambda: multipart_form("file", "again.png", chest_png(seed=92)),
         before=lambda w: w.send_upload(multipart_form("file", "first.png", chest_png(seed=92)))),
]

for _case in CASES[-5:]:
    _case.resend = True

# Feedback (JSON) on the sender's own study.
FEEDBACK = "/api/v1/studies/{own}/feedback/"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES += [
    Case("feedback-deep-json-array", "POST", FEEDBACK, 400, "parse_error", body=b"[" * 50_000,
         content_type="application/json"),
    Case("feedback-deep-json-object", "POST", FEEDBACK, 400, "parse_error", body=b'{"a":' * 50_000,
         content_type="application/json"),
    Case("feedback-deep-but-closed", "POST", FEEDBACK, 400, "parse_error",
         body=b"[" * 20_000 + b"]" * 20_000, content_type="application/json"),
    Case("feedback-malformed", "POST", FEEDBACK, 400, "parse_error", body=b'{"verdict": agree}',
         content_type="application/json"),
    Case("feedback-empty-body", "POST", FEEDBACK, 400, "invalid", body=b"", content_type="application/json"),
    Case("feedback-not-utf8", "POST", FEEDBACK, 400, "parse_error", body=b'{"verdict": "\xff\xfe"}',
         content_type="application/json"),
    Case("feedback-nan", "POST", FEEDBACK, 400, "parse_error", body=b'{"verdict": "agree", "image": NaN}',
         content_type="application/json"),
    Case("feedback-array", "POST", FEEDBACK, 400, "invalid", body=b'["agree"]', content_type="application/json"),
    Case("feedback-null", "POST", FEEDBACK, 400, "invalid", body=b"null", content_type="application/json"),
    Case("feedback-string", "POST", FEEDBACK, 400, "invalid", body=b'"agree"', content_type="application/json"),
    Case("feedback-over-limit", "POST", FEEDBACK, 413, "too_large",
         body=_json({"verdict": "uncertain", "note": "x" * 4000}), content_type="application/json",
         settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1024}),
    Case("feedback-form-encoded", "POST", FEEDBACK, 415, "unsupported_media_type", body=b"verdict=agree",
         content_type="application/x-www-form-urlencoded"),
    Case("feedback-multipart", "POST", FEEDBACK, 415, "unsupported_media_type",
         body=_field("verdict", "agree").encode() + b"--b0--\r\n", content_type=FORM_TYPE),
    Case("feedback-text", "POST", FEEDBACK, 415, "unsupported_media_type", body=b'{"verdict": "agree"}',
         content_type="text/plain"),
    Case("feedback-xml", "POST", FEEDBACK, 415, "unsupported_media_type", body=b"<verdict>agree</verdict>",
         content_type="application/xml"),
    Case("feedback-no-verdict", "POST", FEEDBACK, 400, "invalid", body=_json({}), content_type="application/json"),
    Case("feedback-unknown-verdict", "POST", FEEDBACK, 400, "invalid", body=_json({"verdict": "maybe"}),
         content_type="application/json"),
    Case("feedback-verdict-number", "POST", FEEDBACK, 400, "invalid", body=_json({"verdict": 1}),
         content_type="application/json"),
    Case("feedback-unknown-class", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "corrected", "label": "lung-cancer"}), content_type="application/json"),
    Case("feedback-class-nul", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "corrected", "label": "lung-normal\x00"}), content_type="application/json"),
    Case("feedback-corrected-no-label", "POST", FEEDBACK, 400, "invalid_reading",
         body=_json({"verdict": "corrected"}), content_type="application/json"),
    Case("feedback-note-nul", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "uncertain", "note": "a\x00b"}), content_type="application/json"),
    Case("feedback-note-lone-surrogate", "POST", FEEDBACK, 400, "parse_error",
         body=b'{"verdict": "uncertain", "note": "a\\ud800b"}', content_type="application/json"),
    Case("feedback-verdict-lone-surrogate", "POST", FEEDBACK, 400, "parse_error",
         body=b'{"verdict": "\\udfff"}', content_type="application/json"),
    Case("feedback-note-too-long", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "uncertain", "note": "n" * 4001}), content_type="application/json"),
    Case("feedback-image-unknown", "POST", FEEDBACK, 400, "unknown_image",
         body=_json({"verdict": "agree", "image": 987654}), content_type="application/json"),
    Case("feedback-image-huge", "POST", FEEDBACK, 400, "unknown_image",
         body=_json({"verdict": "agree", "image": 10**30}), content_type="application/json"),
    Case("feedback-image-negative", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "agree", "image": -1}), content_type="application/json"),
    Case("feedback-image-text", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "agree", "image": "one"}), content_type="application/json"),
    Case("feedback-image-float", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "agree", "image": 1.5}), content_type="application/json"),
    Case("feedback-amendment-text", "POST", FEEDBACK, 400, "invalid",
         body=_json({"verdict": "agree", "amendment": "perhaps"}), content_type="application/json"),
    Case("feedback-key-lone-surrogate", "POST", FEEDBACK, 400, "parse_error",
         body=b'{"verdict": "agree", "\\ud83d": 1}', content_type="application/json"),
    Case("feedback-unknown-study", "POST", "/api/v1/studies/2.25.999/feedback/", 404, "not_found",
         body=_json({"verdict": "agree"}), content_type="application/json"),
    Case("feedback-other-senders-study", "POST", "/api/v1/studies/{other}/feedback/", 404, "not_found",
         body=_json({"verdict": "agree"}), content_type="application/json"),
    Case("feedback-without-scope", "POST", FEEDBACK, 403, "permission_denied", who="readonly",
         body=_json({"verdict": "agree"}), content_type="application/json"),
    Case("feedback-get", "GET", FEEDBACK, 405, "method_not_allowed"),
    Case("feedback-put", "PUT", FEEDBACK, 405, "method_not_allowed", body=_json({"verdict": "agree"}),
         content_type="application/json"),
]

# Other JSON endpoints: list filters, results, methods, negotiation.
CASES += [
    Case("list-limit-zero", "GET", "/api/v1/studies/?limit=0", 400, "invalid_limit"),
    Case("list-limit-text", "GET", "/api/v1/studies/?limit=ten", 400, "invalid_limit"),
    Case("list-limit-huge", "GET", "/api/v1/studies/?limit=99999999999999999999", 400, "invalid_limit"),
    Case("list-limit-negative", "GET", "/api/v1/studies/?limit=-5", 400, "invalid_limit"),
    Case("list-status-unknown", "GET", "/api/v1/studies/?status=done", 400, "invalid_status"),
    Case("list-since-text", "GET", "/api/v1/studies/?since=yesterday", 400, "invalid_since"),
    Case("list-since-impossible", "GET", "/api/v1/studies/?since=2025-13-45T99:00:00Z", 400, "invalid_since"),
    Case("list-since-year-0", "GET", "/api/v1/studies/?since=0000-01-01T00:00:00Z", 400, "invalid_since"),
    Case("list-cursor-garbage", "GET", "/api/v1/studies/?cursor=garbage", 404, "invalid_cursor"),
    Case("list-cursor-b64-junk", "GET", "/api/v1/studies/?cursor=cD0yMDI1LTAxLTAxK2dhcmJhZ2U%3D", 404,
         "invalid_cursor"),
    Case("list-accession-5000", "GET", "/api/v1/studies/?accession_number=" + "A" * 5000, 200, ""),
    Case("list-uid-5000", "GET", "/api/v1/studies/?study_instance_uid=" + "1." * 2500, 200, ""),
    Case("list-surrogate-escape", "GET", "/api/v1/studies/?accession_number=%ED%A0%80", 200, ""),
    Case("list-invalid-utf8", "GET", "/api/v1/studies/?accession_number=%FF%FE", 200, ""),
    Case("list-accept-xml", "GET", "/api/v1/studies/", 406, "not_acceptable",
         headers={"HTTP_ACCEPT": "application/xml"}),
    Case("list-put", "PUT", "/api/v1/studies/", 405, "method_not_allowed", body=b"{}",
         content_type="application/json"),
    Case("list-delete", "DELETE", "/api/v1/studies/", 405, "method_not_allowed"),
    Case("list-patch", "PATCH", "/api/v1/studies/", 405, "method_not_allowed", body=b"{}",
         content_type="application/json"),
    Case("detail-unknown", "GET", "/api/v1/studies/2.25.424242/", 404, "not_found"),
    Case("detail-5000-char-uid", "GET", "/api/v1/studies/" + "9" * 5000 + "/", 404, "not_found"),
    Case("detail-other-sender", "GET", "/api/v1/studies/{other}/", 404, "not_found"),
    Case("detail-delete", "DELETE", "/api/v1/studies/{own}/", 405, "method_not_allowed"),
    Case("detail-post", "POST", "/api/v1/studies/{own}/", 405, "method_not_allowed", body=b"{}",
         content_type="application/json"),
    Case("fhir-unknown", "GET", "/api/v1/studies/2.25.424242/fhir/", 404, "not_found"),
    Case("fhir-other-sender", "GET", "/api/v1/studies/{other}/fhir/", 404, "not_found"),
    Case("sr-unknown", "GET", "/api/v1/studies/2.25.424242/sr/", 404, "not_found"),
    Case("heatmap-unknown", "GET", "/api/v1/studies/2.25.424242/heatmap.png", 404, "not_found"),
    Case("image-heatmap-text-id", "GET", "/api/v1/studies/{own}/images/abc/heatmap.png", 404, "not_found"),
    Case("image-heatmap-huge-id", "GET", "/api/v1/studies/{own}/images/99999999999999999999/heatmap.png", 404,
         "not_found"),
    Case("image-heatmap-negative-id", "GET", "/api/v1/studies/{own}/images/-1/heatmap.png", 404, "not_found"),
    Case("image-heatmap-unknown-id", "GET", "/api/v1/studies/{own}/images/987654/heatmap.png", 404, "not_found"),
]

# Authentication and scopes.
CASES += [
    Case("auth-none-list", "GET", "/api/v1/studies/", 401, "not_authenticated", who="anon"),
    Case("auth-none-submit", "POST", "/api/v1/studies/", 401, "not_authenticated", who="anon",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("auth-bad-token-list", "GET", "/api/v1/studies/", 401, "invalid_token", who="badtoken"),
    Case("auth-bad-token-submit", "POST", "/api/v1/studies/", 401, "invalid_token", who="badtoken",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("auth-bad-token-stow", "POST", "/dicomweb/studies", 401, "invalid_token", who="badtoken",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type=STOW_TYPE),
    Case("auth-bad-token-qido", "GET", "/dicomweb/studies", 401, "invalid_token", who="badtoken"),
    Case("auth-revoked", "GET", "/api/v1/studies/", 401, "client_revoked", who="revoked"),
    Case("auth-empty-bearer", "GET", "/api/v1/studies/", 401, "invalid_token",
         headers={"HTTP_AUTHORIZATION": "Bearer "}, who="anon"),
    Case("auth-bearer-two-words", "GET", "/api/v1/studies/", 401, "invalid_token",
         headers={"HTTP_AUTHORIZATION": "Bearer a b"}, who="anon"),
    Case("auth-bearer-5000", "GET", "/api/v1/studies/", 401, "invalid_token",
         headers={"HTTP_AUTHORIZATION": "Bearer " + "t" * 5000}, who="anon"),
    Case("auth-bearer-nul", "GET", "/api/v1/studies/", 401, "invalid_token",
         headers={"HTTP_AUTHORIZATION": "Bearer abc\x00def"}, who="anon"),
    # WSGI hands headers over as latin-1: UTF-8 bytes arrive as these characters.
    Case("auth-bearer-non-latin", "GET", "/api/v1/studies/", 401, "invalid_token",
         headers={"HTTP_AUTHORIZATION": "Bearer " + "ключ".encode().decode("latin-1")}, who="anon"),
    Case("auth-basic-garbage", "GET", "/dicomweb/studies", 401, "", who="anon",
         headers={"HTTP_AUTHORIZATION": "Basic %%%not-base64"}),
    Case("auth-basic-no-colon", "GET", "/dicomweb/studies", 401, "", who="anon",
         headers={"HTTP_AUTHORIZATION": "Basic bm9jb2xvbg=="}),
    Case("auth-basic-wrong", "GET", "/dicomweb/studies", 401, "", who="anon",
         headers={"HTTP_AUTHORIZATION": "Basic c3QtZWxzZXdoZXJlLXBhY3M6d3Jvbmc="}),
    Case("auth-session-not-token", "GET", "/api/v1/studies/", 401, "not_authenticated", who="reader"),
    Case("scope-submit-readonly", "POST", "/api/v1/studies/", 403, "permission_denied", who="readonly",
         body=lambda: multipart_form("files", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("scope-stow-readonly", "POST", "/dicomweb/studies", 403, "permission_denied", who="readonly",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type=STOW_TYPE),
]


# STOW-RS: the request itself refused, or every instance refused (409, nothing stored).
def _stow_one(name: str, ctype: str = "application/dicom") -> Callable[[], bytes]:
    return lambda: stow_body((ctype, body(name)))


STOW_FAILED = [
    ("empty", 0xC000), ("pdf", 0xC000), ("text", 0xC000), ("zip", 0xC000), ("dicom_truncated", 0xC000),
    ("dicom_header_only", 0xC000), ("dicom_no_pixels", 0x0122), ("dicom_sr_class", 0x0122),
    ("dicom_mpeg2", 0xC000), ("dicom_huge_dims", 0xA700), ("dicom_preamble_junk", 0xC000),
    ("dicom_nul_in_uid", 0xC000), ("dicom_bad_uid", 0xC000), ("dicom_long_uid", 0xC000),
    ("dicom_nul_in_accession", 0xC000), ("dicom_long_patient_id", 0xC000),
]
CASES += [Case(f"stow-part-{name}", "POST", "/dicomweb/studies", 409, "", body=_stow_one(name),
               content_type=STOW_TYPE, stow_reason=reason) for name, reason in STOW_FAILED]
CASES += [
    Case("stow-part-png", "POST", "/dicomweb/studies", 409, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("application/dicom", chest_png(seed=2))), stow_reason=0xC000),
    Case("stow-part-typed-png", "POST", "/dicomweb/studies", 409, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("image/png", make_cxr_dicom(rows=16, cols=16, bits=8))), stow_reason=0xC000),
    Case("stow-wrong-study-in-url", "POST", f"/dicomweb/studies/{STUDY_UID}", 409, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8,
                                                                     study_uid="1.2.826.0.1.3680043.8.498.7002"))),
         stow_reason=0xA900),
    Case("stow-bad-uid-in-url", "POST", "/dicomweb/studies/not-a-uid", 409, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         stow_reason=0xA900),
    Case("stow-other-senders-study", "POST", "/dicomweb/studies", 409, "", content_type=STOW_TYPE,
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(
             rows=16, cols=16, bits=8, study_uid="1.2.826.0.1.3680043.8.498.7100",
             sop_uid="1.2.826.0.1.3680043.8.498.7101"))),
         before=lambda w: w.send_as_other_stow(make_cxr_dicom(
             rows=16, cols=16, bits=8, study_uid="1.2.826.0.1.3680043.8.498.7100",
             sop_uid="1.2.826.0.1.3680043.8.498.7102")),
         stow_reason=0x0124),
    Case("stow-json-type", "POST", "/dicomweb/studies", 415, "unsupported_media_type", body=b"{}",
         content_type="application/json"),
    Case("stow-form-type", "POST", "/dicomweb/studies", 415, "unsupported_media_type",
         body=lambda: multipart_form("file", "a.dcm", make_cxr_dicom(rows=16, cols=16, bits=8)),
         content_type=FORM_TYPE),
    Case("stow-dicom-type-raw", "POST", "/dicomweb/studies", 415, "unsupported_media_type",
         body=lambda: make_cxr_dicom(rows=16, cols=16, bits=8), content_type="application/dicom"),
    Case("stow-metadata-type", "POST", "/dicomweb/studies", 415, "unsupported_media_type", body=b"--s0--",
         content_type='multipart/related; type="application/dicom+json"; boundary=s0'),
    Case("stow-no-content-type", "POST", "/dicomweb/studies", 415, "unsupported_media_type",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))), content_type=""),
    Case("stow-no-boundary", "POST", "/dicomweb/studies", 400, "malformed_multipart",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type='multipart/related; type="application/dicom"'),
    Case("stow-wrong-boundary", "POST", "/dicomweb/studies", 400, "malformed_multipart",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type='multipart/related; type="application/dicom"; boundary=zz'),
    Case("stow-truncated-body", "POST", "/dicomweb/studies", 400, "malformed_multipart",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8)))[:300],
         content_type=STOW_TYPE),
    Case("stow-empty-body", "POST", "/dicomweb/studies", 400, "malformed_multipart", body=b"",
         content_type=STOW_TYPE, headers={"CONTENT_TYPE": STOW_TYPE}),
    Case("stow-no-parts", "POST", "/dicomweb/studies", 400, "no_instances", body=b"--s0--\r\n",
         content_type=STOW_TYPE),
    Case("stow-content-length-nan", "POST", "/dicomweb/studies", 400, "bad_content_length",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=16, cols=16, bits=8))),
         content_type=STOW_TYPE, headers={"CONTENT_LENGTH": "-x"}),
    Case("stow-content-length-huge", "POST", "/dicomweb/studies", 413, "too_large", body=b"x",
         content_type=STOW_TYPE, headers={"CONTENT_LENGTH": str(10**12)}),
    Case("stow-body-over-limit", "POST", "/dicomweb/studies", 413, "too_large",
         body=lambda: stow_body(("application/dicom", make_cxr_dicom(rows=64, cols=64))),
         content_type=STOW_TYPE, settings={"MAX_UPLOAD_BYTES": 2048}),
    Case("stow-put", "PUT", "/dicomweb/studies", 405, "method_not_allowed", body=b"", content_type=STOW_TYPE),
    Case("stow-delete", "DELETE", "/dicomweb/studies", 405, "method_not_allowed"),
    Case("stow-get-study-url", "GET", f"/dicomweb/studies/{STUDY_UID}", 405, "method_not_allowed"),
]

# QIDO-RS.
CASES += [
    Case("qido-limit-text", "GET", "/dicomweb/studies?limit=ten", 400, "invalid_query"),
    Case("qido-offset-text", "GET", "/dicomweb/studies?offset=1.5", 400, "invalid_query"),
    Case("qido-limit-huge", "GET", "/dicomweb/studies?limit=99999999999999999999", 200, ""),
    Case("qido-offset-huge", "GET", "/dicomweb/studies?offset=99999999999999999999", 200, ""),
    Case("qido-offset-negative", "GET", "/dicomweb/studies?offset=-4", 200, ""),
    Case("qido-uid-5000", "GET", "/dicomweb/studies?StudyInstanceUID=" + "1." * 2500, 200, ""),
    Case("qido-uid-list", "GET", "/dicomweb/studies?StudyInstanceUID=1.2,1.3&StudyInstanceUID=1.4", 200, ""),
    Case("qido-uid-wildcard", "GET", "/dicomweb/studies?StudyInstanceUID=*", 200, ""),
    Case("qido-accession-wildcard", "GET", "/dicomweb/studies?AccessionNumber=%25%5F*?", 200, ""),
    Case("qido-invalid-utf8", "GET", "/dicomweb/studies?AccessionNumber=%C3%28", 200, ""),
    Case("qido-accept-xml", "GET", "/dicomweb/studies", 406, "not_acceptable",
         headers={"HTTP_ACCEPT": "application/dicom+xml"}),
    Case("qido-without-read-scope", "GET", "/dicomweb/studies", 403, "permission_denied", who="submitonly"),
    Case("qido-anonymous", "GET", "/dicomweb/studies", 401, "", who="anon"),
]

# The upload page (one file, HTML answers; htmx partial).
UPLOAD_FILES = [
    ("empty", "empty.png", 400, "empty"), ("pdf", "scan.png", 415, "accepted: PNG, JPEG, DICOM"),
    ("text", "notes.dcm", 415, "accepted: PNG, JPEG, DICOM"), ("zip", "bundle.png", 415, "accepted: PNG"),
    ("html", "page.png", 415, "accepted: PNG"), ("png_truncated", "cut.png", 422, "corrupt or truncated"),
    ("png_bomb", "bomb.png", 422, "30000x30000"), ("dicom_truncated", "cut.dcm", 422, "refused"),
    ("dicom_no_pixels", "nopix.dcm", 422, "Pixel Data"), ("dicom_sr_class", "sr.dcm", 422, "Pixel Data"),
    ("dicom_mpeg2", "mpeg.dcm", 415, "transfer syntax"), ("dicom_huge_dims", "dims.dcm", 422, "refused"),
    ("dicom_nul_in_uid", "nuluid.dcm", 422, "not a DICOM UID"), ("dicom_bad_uid", "baduid.dcm", 422, "not a DICOM UID"),
    ("dicom_nul_in_accession", "nulacc.dcm", 422, "NUL"), ("dicom_long_patient_id", "longpid.dcm", 422, "VR allows"),
]
CASES += [Case(f"upload-file-{name}-{fname}", "POST", "/upload/file/", status, needle, who="reader", html=True,
               body=(lambda n=name, f=fname: multipart_form("file", f, body(n))), content_type=FORM_TYPE)
          for name, fname, status, needle in UPLOAD_FILES]
CASES += [
    Case("upload-5000-char-name", "POST", "/upload/file/", 400, "shorten the file name", who="reader", html=True,
         body=lambda: multipart_form("file", "a" * 5000 + ".png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("upload-no-boundary", "POST", "/upload/file/", 400, "no valid boundary", who="reader", html=True,
         body=lambda: multipart_form("file", "c.png", chest_png(seed=1)), content_type="multipart/form-data"),
    Case("upload-no-file", "POST", "/upload/file/", 400, "refused", who="reader", html=True,
         body=_field("x", "1").encode() + b"--b0--\r\n", content_type=FORM_TYPE),
    Case("upload-two-files", "POST", "/upload/file/", 400, "exactly one file", who="reader", html=True,
         body=lambda: (b'--b0\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
                       + chest_png(seed=50) + b'\r\n--b0\r\nContent-Disposition: form-data; name="file"; '
                       b'filename="b.png"\r\n\r\n' + chest_png(seed=51) + b"\r\n--b0--\r\n"),
         content_type=FORM_TYPE),
    Case("upload-json", "POST", "/upload/file/", 400, "refused", who="reader", html=True, body=b"{}",
         content_type="application/json"),
    Case("upload-content-length-huge", "POST", "/upload/file/", 413, "maximum", who="reader", html=True,
         body=b"x" * 10, content_type=FORM_TYPE, headers={"CONTENT_LENGTH": str(10**12)}),
    Case("upload-get", "GET", "/upload/file/", 405, "", who="reader", html=True),
    Case("upload-anonymous", "POST", "/upload/file/", 302, "", who="anon", html=True,
         body=lambda: multipart_form("file", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("upload-ml-admin", "POST", "/upload/file/", 403, "", who="mladmin", html=True,
         body=lambda: multipart_form("file", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
    Case("upload-without-csrf", "POST", "/upload/file/", 403, "", who="reader-csrf", html=True,
         body=lambda: multipart_form("file", "c.png", chest_png(seed=1)), content_type=FORM_TYPE),
]

# The reader's review form and sign-off on a study the reader may see.
REVIEW = "/studies/{own}/images/{image}/reviews/"
URLENC = "application/x-www-form-urlencoded"
CASES += [
    Case("review-unknown-verdict", "POST", REVIEW, 400, "verdict", who="reader", html=True,
         body=b"verdict=maybe", content_type=URLENC),
    Case("review-unknown-class", "POST", REVIEW, 400, "label", who="reader", html=True,
         body=b"verdict=corrected&label=lung-cancer", content_type=URLENC),
    Case("review-corrected-no-label", "POST", REVIEW, 400, "label", who="reader", html=True,
         body=b"verdict=corrected", content_type=URLENC),
    Case("review-note-nul", "POST", REVIEW, 400, "note", who="reader", html=True,
         body=b"verdict=uncertain&note=a%00b", content_type=URLENC),
    Case("review-invalid-utf8", "POST", REVIEW, 400, "verdict", who="reader", html=True,
         body=b"verdict=%FF%FE", content_type=URLENC),
    Case("review-image-huge-id", "POST", "/studies/{own}/images/99999999999999999999/reviews/", 404, "",
         who="reader", html=True, body=b"verdict=agree", content_type=URLENC),
    Case("review-unknown-study", "POST", "/studies/2.25.4242/images/1/reviews/", 404, "", who="reader",
         html=True, body=b"verdict=agree", content_type=URLENC),
    Case("review-get", "GET", REVIEW, 405, "", who="reader", html=True),
    Case("retry-huge-id", "POST", "/studies/{own}/images/99999999999999999999/retry/", 404, "", who="reader",
         html=True),
    Case("signoff-unknown-study", "POST", "/studies/2.25.4242/sign-off/", 404, "", who="reader", html=True),
    Case("signoff-image-text", "POST", "/studies/{own}/sign-off/", 400, "", who="reader", html=True,
         body=b"image=abc", content_type=URLENC),
    Case("display-huge-id", "GET", "/studies/{own}/images/99999999999999999999/display.png", 404, "",
         who="reader", html=True),
    Case("study-page-5000-uid", "GET", "/studies/" + "7" * 5000 + "/", 404, "", who="reader", html=True),
    Case("worklist-bad-filters", "GET", "/worklist/?status=x&since=notadate&page=-3&out_of_scope=maybe", 200,
         "", who="reader", html=True),
]


# ------------------------------------------------------------------ the harness


def stored_files() -> set[str]:
    found: set[str] = set()

    def walk(prefix: str) -> None:
        if prefix and not default_storage.exists(prefix):
            return
        dirs, files = default_storage.listdir(prefix)
        found.update(f"{prefix}/{f}" if prefix else f for f in files)
        for d in dirs:
            walk(f"{prefix}/{d}" if prefix else d)

    for top in ("images", "display", "heatmaps", "attributions"):
        walk(top)
    return found


def snapshot() -> dict[str, Any]:
    return {
        "studies": Study.objects.count(), "images": Image.objects.count(),
        "predictions": Prediction.objects.count(), "reviews": Review.objects.count(),
        "write_events": AuditEvent.objects.filter(action__in=WRITE_ACTIONS - RESEND_ACTIONS).count(),
        "resend_events": AuditEvent.objects.filter(action__in=RESEND_ACTIONS).count(),
        "files": stored_files(),
    }


class World:
    """The principals and the stored state every case starts from."""

    def __init__(self, radiologist, ml_admin) -> None:
        from django.contrib.auth.models import Permission  # noqa: F401 - roles set by the fixtures

        self.pacs = api_client_create(name="bad-input-pacs", scopes="submit,read,feedback")
        self.other = api_client_create(name="other-pacs", scopes="submit,read,feedback")
        self.readonly = api_client_create(name="readonly-pacs", scopes="read")
        self.submitonly = api_client_create(name="submitonly-pacs", scopes="submit")
        revoked = api_client_create(name="revoked-pacs", scopes="submit,read")
        api_client_revoke(client=revoked.client)
        self.revoked = revoked
        own = StudyFactory(uid=OWN_STUDY, api_client=self.pacs.client, source=Study.Source.API)
        self.image = ImageFactory(study=own)
        PredictionFactory(image=self.image)
        other = StudyFactory(uid=OTHER_STUDY, api_client=self.other.client, source=Study.Source.API)
        PredictionFactory(image=ImageFactory(study=other))
        self.reader = Client()
        self.reader.force_login(radiologist)
        self.reader_csrf = Client(enforce_csrf_checks=True)
        self.reader_csrf.force_login(radiologist)
        self.mladmin = Client()
        self.mladmin.force_login(ml_admin)

    def client_for(self, who: str) -> tuple[Client, dict[str, str]]:
        tokens = {"pacs": self.pacs.token, "readonly": self.readonly.token, "other": self.other.token,
                  "submitonly": self.submitonly.token, "revoked": self.revoked.token, "badtoken": "not-a-token"}
        if who in tokens:
            return Client(), {"HTTP_AUTHORIZATION": f"Bearer {tokens[who]}"}
        return {"reader": self.reader, "reader-csrf": self.reader_csrf, "mladmin": self.mladmin,
                "anon": Client()}[who], {}

    def _must(self, response, *ok: int):
        assert response.status_code in ok, (response.status_code, response.content[:500])
        return response

    def send_rest(self, data: bytes, **extra):
        return self._must(Client().post("/api/v1/studies/", data, content_type=FORM_TYPE,
                                        HTTP_AUTHORIZATION=f"Bearer {self.pacs.token}", **extra), 202)

    def send_stow(self, data: bytes):
        return self._must(Client().generic("POST", "/dicomweb/studies", data, content_type=STOW_TYPE,
                                           HTTP_AUTHORIZATION=f"Bearer {self.pacs.token}"), 200)

    def send_upload(self, data: bytes):
        return self._must(self.reader.post("/upload/file/", data, content_type=FORM_TYPE,
                                           HTTP_HX_REQUEST="true"), 201)

    def send_as_other(self, png: bytes):
        return self._must(Client().post("/api/v1/studies/", multipart_form("files", "o.png", png),
                                        content_type=FORM_TYPE, HTTP_AUTHORIZATION=f"Bearer {self.other.token}"), 202)

    def send_as_other_stow(self, dicom: bytes):
        return self._must(Client().generic("POST", "/dicomweb/studies", stow_body(("application/dicom", dicom)),
                                           content_type=STOW_TYPE,
                                           HTTP_AUTHORIZATION=f"Bearer {self.other.token}"), 200)


@pytest.fixture
def world(radiologist, ml_admin, production_model) -> World:
    return World(radiologist, ml_admin)


def test_the_suite_has_at_least_150_cases_with_unique_ids():
    ids = [c.id for c in CASES]
    assert len(ids) >= 150, len(ids)
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, settings):
    for key, value in case.settings.items():
        setattr(settings, key, value)
    if case.before is not None:
        case.before(world)
    before = snapshot()
    client, auth = world.client_for(case.who)
    path = case.path.format(own=OWN_STUDY, other=OTHER_STUDY, image=world.image.pk)
    data = case.body() if callable(case.body) else case.body
    extra = {**auth, **case.headers}
    if case.html and case.who.startswith("reader"):
        extra.setdefault("HTTP_HX_REQUEST", "true")
    kwargs: dict[str, Any] = {}
    if data is not None or case.content_type is not None:
        kwargs = {"data": data if data is not None else b"",
                  "content_type": case.content_type if case.content_type is not None else ""}
    response = client.generic(case.method, path, **kwargs, **extra)

    assert response.status_code == case.status, (response.status_code, response.content[:800])
    content = response.content.decode(errors="replace")
    payload = None
    if case.status >= 400 and not case.html:
        if case.headers.get("HTTP_ACCEPT", "").endswith("+xml"):  # the error as the client asked
            assert response["Content-Type"].startswith("application/dicom+xml"), response["Content-Type"]
            assert f"<code>{case.code}</code>" in content, content
        else:
            assert response["Content-Type"].startswith(("application/json", "application/dicom+json")), \
                (response["Content-Type"], content[:300])
            payload = response.json()
    elif case.status >= 400 and case.code:
        assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
        assert case.code in content, content[:800]
    if payload is not None and case.stow_reason is not None:
        [failed] = payload["00081198"]["Value"]
        assert failed["00081197"]["Value"] == [case.stow_reason], payload
        assert "00081199" not in payload  # nothing referenced as stored
    elif payload is not None:
        assert set(payload) >= {"code", "detail"} and payload["detail"], payload
        if case.code:
            assert payload["code"] == case.code, payload
        if case.file_code:
            assert case.file_code in {f["code"] for f in payload["files"]}, payload
    assert "Traceback" not in content

    after = snapshot()
    if case.resend:
        assert after["resend_events"] > before["resend_events"]
        after["resend_events"] = before["resend_events"]
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def test_the_snapshot_sees_what_an_accepted_submission_stores(world: World):
    """The control for "nothing half-saved": a good submission changes every count it should."""
    before = snapshot()
    world.send_rest(multipart_form("files", "good.png", chest_png(seed=99)))
    after = snapshot()
    assert after["studies"] == before["studies"] + 1 and after["images"] == before["images"] + 1
    assert after["predictions"] == before["predictions"] + 1
    assert after["write_events"] > before["write_events"]
    assert len(after["files"] - before["files"]) >= 1
