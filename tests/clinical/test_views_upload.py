"""The upload page and its one-file endpoint, through URLs: accepted, duplicate, refused."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clinical.models import Image, Prediction, Study
from radviewer.audit.models import AuditEvent
from tests.clinical.dicom_factory import make_cxr_dicom, with_undecodable_syntax
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db
URL = "/upload/file/"
MPEG2 = "1.2.840.10008.1.2.4.100"


def _post(client, data: bytes, name: str, **extra):
    return client.post(URL, {"file": SimpleUploadedFile(name, data)}, HTTP_HX_REQUEST="true", **extra)


def _stored_files() -> set[str]:
    names: set[str] = set()
    for top in ("images", "display"):
        if not default_storage.exists(top):
            continue
        for sub in default_storage.listdir(top)[0]:
            names |= {f"{top}/{sub}/{f}" for f in default_storage.listdir(f"{top}/{sub}")[1]}
    return names


def _bomb_png(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side (~110 kB on disk, 900 Mpx decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_page_needs_upload_permission(client, ml_admin, radiologist_client):
    assert radiologist_client.get(reverse("clinical:upload")).status_code == 200
    client.force_login(ml_admin)
    assert client.get(reverse("clinical:upload")).status_code == 403
    assert _post(client, chest_png(), "x.png").status_code == 403
    assert Study.objects.count() == 0


def test_png_is_accepted_with_a_link_to_its_study(production_model, radiologist_client,
                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = _post(radiologist_client, chest_png(seed=1), "chest.png")
    assert response.status_code == 201
    image = Image.objects.get()
    body = response.content.decode()
    assert "accepted" in body and "chest.png" in body and "<html" not in body
    assert reverse("clinical:study", args=[image.study.uid]) in body
    assert image.predictions.get().status == Prediction.Status.QUEUED
    assert len(callbacks) == 1  # the triage task, sent on commit
    assert image.study.submitted_by.username == "dr_house"


def test_dicom_is_accepted_and_deidentified(production_model, radiologist_client):
    response = _post(radiologist_client, make_cxr_dicom(rows=64, cols=64, patient_name="Roe^Ann"), "IMG01.dcm")
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert image.format == "dicom" and image.study.modality == "DX"
    assert "Roe" not in response.content.decode()


def test_same_file_again_is_linked_not_duplicated(production_model, radiologist_client):
    assert _post(radiologist_client, chest_png(seed=2), "a.png").status_code == 201
    response = _post(radiologist_client, chest_png(seed=2), "again.png")
    assert response.status_code == 200
    assert "duplicate: linked to existing image" in response.content.decode()
    assert Image.objects.count() == 1 and Study.objects.count() == 1


def test_modality_mismatch_shows_the_scope_warning(production_model, radiologist_client):
    data = make_cxr_dicom(rows=32, cols=32, modality="MR", body_part="HEAD")
    response = _post(radiologist_client, data, "brain.dcm")
    assert response.status_code == 201
    assert "Scope warning" in response.content.decode()
    assert Study.objects.get().scope_warning


def _truncated_png() -> bytes:
    data = chest_png(seed=4)
    return data[: len(data) // 2]


BAD_INPUTS = {
    "empty": (b"", "empty.png", 400, "empty"),
    "pdf_renamed": (b"%PDF-1.7\n1 0 obj <<>> endobj\n" * 10, "scan.png", 415, "accepted: PNG, JPEG, DICOM"),
    "truncated_png": (None, "cut.png", 422, "corrupt or truncated"),
    "dicom_without_pixels": (None, "nopix.dcm", 422, "Pixel Data"),
    "unsupported_syntax": (None, "mpeg.dcm", 415, "transfer syntax"),
    "bomb_30000px": (None, "huge.png", 422, "30000x30000"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_a_reason_and_nothing_saved(case, production_model, radiologist_client):
    data, name, status, needle = BAD_INPUTS[case]
    if data is None:
        data = {
            "truncated_png": _truncated_png,
            "dicom_without_pixels": lambda: make_cxr_dicom(rows=16, cols=16, with_pixels=False),
            "unsupported_syntax": lambda: with_undecodable_syntax(make_cxr_dicom(rows=16, cols=16, bits=8), MPEG2),
            "bomb_30000px": _bomb_png,
        }[case]()
    files_before = _stored_files()
    response = _post(radiologist_client, data, name)
    assert response.status_code == status, response.content
    body = response.content.decode()
    assert "refused" in body and needle in body
    assert Study.objects.count() == 0 and Image.objects.count() == 0
    assert _stored_files() == files_before
    assert not AuditEvent.objects.filter(action="image.ingested").exists()


def test_path_and_control_characters_in_the_name_are_sanitised(production_model, radiologist_client):
    response = _post(radiologist_client, chest_png(seed=6), "../../etc/ch\x07est\x1b[31m.png")
    assert response.status_code == 201
    name = Image.objects.get().original_name
    assert "/" not in name and ".." not in name
    assert all(ch.isprintable() for ch in name) and name.endswith(".png")


def test_oversize_body_is_refused_from_content_length_before_reading(production_model, radiologist_client,
                                                                       settings):
    settings.MAX_UPLOAD_BYTES = 4096
    # Content-Length claims far more than the payload: reading the body would fail the test
    # client's FakePayload, so a 413 proves the view never read it.
    response = radiologist_client.generic(
        "POST", URL, b"x" * 10, content_type="multipart/form-data; boundary=B",
        HTTP_HX_REQUEST="true", CONTENT_LENGTH=str(10**9),
    )
    assert response.status_code == 413
    assert "maximum" in response.content.decode()


def test_file_over_the_limit_is_refused_by_the_service(production_model, radiologist_client, settings):
    settings.MAX_UPLOAD_BYTES = 4096
    big = chest_png(size=(200, 200), seed=9)
    assert len(big) > 4096
    response = _post(radiologist_client, big, "big.png")
    assert response.status_code == 413 and Image.objects.count() == 0


def test_one_file_per_request(production_model, radiologist_client):
    files = [SimpleUploadedFile(f"{i}.png", chest_png(seed=10 + i)) for i in range(2)]
    response = radiologist_client.post(URL, {"file": files}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "exactly one file" in response.content.decode()
    response = radiologist_client.post(URL, {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and Image.objects.count() == 0


def test_plain_form_post_gets_the_whole_page(production_model, radiologist_client):
    response = radiologist_client.post(URL, {"file": SimpleUploadedFile("p.png", chest_png(seed=12))})
    assert response.status_code == 201
    assert b"<html" in response.content and b"upload-input" in response.content


def _raw_multipart(client, body: bytes, content_type: str):
    return client.post(URL, body, content_type=content_type, HTTP_HX_REQUEST="true")


def test_a_five_thousand_character_file_name_gets_a_reason(radiologist_client):
    name = "a" * 5000 + ".png"
    body = (f'--b0\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + chest_png() + b"\r\n--b0--\r\n"
    response = _raw_multipart(radiologist_client, body, "multipart/form-data; boundary=b0")
    assert response.status_code == 400
    assert b"shorten the file name" in response.content and b"refused" in response.content
    assert not Image.objects.exists()


def test_multipart_without_a_boundary_gets_a_reason(radiologist_client):
    body = b'--b0\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\nabc\r\n--b0--\r\n'
    response = _raw_multipart(radiologist_client, body, "multipart/form-data")
    assert response.status_code == 400
    assert b"no valid boundary" in response.content and b"refused" in response.content
    assert not Image.objects.exists()


def test_upload_page_lists_my_recent_uploads_after_a_reload(radiologist_client, radiologist, ml_admin):
    """Bug 6: the results vanished on reload; the page now reads the user's uploads back."""
    assert _post(radiologist_client, chest_png(seed=41), "first.png").status_code == 201
    assert _post(radiologist_client, chest_png(seed=42), "second.png").status_code == 201
    assert _post(radiologist_client, b"not an image", "bad.png").status_code >= 400
    first, second = (Image.objects.get(original_name=n) for n in ("first.png", "second.png"))
    body = radiologist_client.get(reverse("clinical:upload")).content.decode()  # a reload
    recent = body[body.index('id="recent-uploads"') :]
    recent = recent[: recent.index("</ul>")]
    links = [reverse("clinical:study", args=[img.study.uid]) + f"?image={img.pk}" for img in (second, first)]
    assert recent.index(links[0]) < recent.index(links[1])  # newest first
    second.study.refresh_from_db()
    assert f'<span class="status status-{second.study.status}">{second.study.get_status_display()}</span>' in recent
    assert "first.png" not in recent and "bad.png" not in recent  # file names are not shown (PHI)
    # Another user's uploads, and old ones, are not listed.
    other = Study.objects.filter(pk=first.study_id)
    other.update(submitted_by=ml_admin)
    Image.objects.filter(pk=second.pk).update(created_at=second.created_at - timedelta(hours=25))
    body = radiologist_client.get(reverse("clinical:upload")).content.decode()
    assert "No uploads of yours in the last 24 hours" in body
