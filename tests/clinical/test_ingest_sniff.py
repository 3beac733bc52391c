"""Type detection by content and file-name sanitising (clinical.ingest.sniff / filenames)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from clinical.ingest import IngestError, sanitize_filename, sniff
from tests.clinical.dicom_factory import make_cxr_dicom, to_raw_dataset


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="JPEG")
    return buf.getvalue()


def test_sniff_recognises_each_accepted_type_by_content() -> None:
    dicom = make_cxr_dicom(rows=8, cols=8)
    assert sniff(_png()) == "png"
    assert sniff(_jpeg()) == "jpeg"
    assert sniff(dicom) == "dicom"
    assert sniff(to_raw_dataset(dicom)) == "dicom"  # no preamble, no "DICM"


def test_empty_file_is_its_own_error() -> None:
    with pytest.raises(IngestError) as exc:
        sniff(b"")
    assert exc.value.code == "empty_file"
    assert exc.value.http_status == 400


def test_pdf_renamed_png_is_refused_and_named() -> None:
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
    with pytest.raises(IngestError) as exc:
        sniff(pdf)
    assert exc.value.code == "unsupported_type"
    assert exc.value.http_status == 415
    assert exc.value.message == "content is PDF, not an image; accepted: PNG, JPEG, DICOM"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"patient list\nDoe, Jane\n", "text"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b"II*\x00" + b"\x00" * 32, "TIFF"),
        (b"PK\x03\x04" + b"\x00" * 32, "ZIP"),
        # Starts like a raw dataset (0008,0016) but the SOP Class UID is junk.
        (b"\x08\x00\x16\x00\x04\x00\x00\x00abcd", "unrecognised binary"),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom on the junk UID
def test_other_content_is_refused_with_what_it_is(data: bytes, named: str) -> None:
    with pytest.raises(IngestError) as exc:
        sniff(data)
    assert exc.value.code == "unsupported_type"
    assert named in exc.value.message
    assert "accepted: PNG, JPEG, DICOM" in exc.value.message


def test_unknown_error_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown IngestError code"):
        IngestError("no_such_code")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system32\\chest.PNG", "chest.png"),
        ("C:\\scans\\x-ray 01.dcm", "x-ray 01.dcm"),
        ("evil\x00name\x07\x1b.png", "evilname.png"),
        ("scan\u202egnp.exe", "scangnp.exe"),  # right-to-left override dropped
        ("Röntgen Thorax.jpg", "Rontgen Thorax.jpg"),
        ("", "upload"),
        ("../", "upload"),
        ("....", "upload"),
        (".png", "png"),
        ("CON.png", "_CON.png"),
        ("a<b>c|d?.png", "a_b_c_d.png"),
    ],
)
def test_sanitize_filename(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


def test_sanitize_filename_limits_length_and_keeps_extension() -> None:
    result = sanitize_filename("x" * 500 + ".dcm")
    assert len(result) == 100
    assert result.endswith(".dcm")
