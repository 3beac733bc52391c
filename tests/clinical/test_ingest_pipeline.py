"""ingest_bytes: the one entry point (size first, content-typed dispatch, what gets stored)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from clinical.ingest import IngestError, ingest_bytes, render_display
from tests.clinical.dicom_factory import make_cxr_dicom

KEY = b"test-pseudonym-key-0123456789abcdef"


def _ingest(data: bytes, filename: str = "upload.bin", max_bytes: int = 5_000_000):
    return ingest_bytes(data, filename=filename, pseudonym_key=KEY, max_bytes=max_bytes, max_pixels=1_000_000)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_png_is_stored_as_uploaded_with_a_viewer_png() -> None:
    pixels = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    data = _png(pixels)
    result = _ingest(data, filename="../../scans/chest.dcm")  # extension lies; content wins
    assert result.format == "png"
    assert result.stored_bytes == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.filename == "chest.dcm"
    assert result.dicom is None and result.patient_pseudonym is None
    png, shown = render_display(result.stored_bytes, format=result.format, max_pixels=10**8)
    viewer = Image.open(io.BytesIO(png))
    assert viewer.mode == "L"
    assert np.array_equal(np.asarray(viewer), pixels) and np.array_equal(shown, pixels)


def test_dicom_is_stored_de_identified_and_hashed_as_uploaded() -> None:
    data = make_cxr_dicom(rows=32, cols=32, patient_name="Roe^Richard")
    result = _ingest(data, filename="IMG0001")
    assert result.format == "dicom" and result.dicom is not None
    assert result.stored_bytes == result.dicom.deidentified_bytes
    assert b"Roe^Richard" in data and b"Roe^Richard" not in result.stored_bytes
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.patient_pseudonym == result.dicom.patient_pseudonym
    assert (result.scope, result.scope_warning) == ("cxr", None)
    stored = pydicom.dcmread(io.BytesIO(result.stored_bytes))
    assert stored.PatientName == result.patient_pseudonym
    # The viewer PNG, rendered later from the stored (de-identified) copy, shows exactly the
    # pixels decoded at ingest.
    png, shown = render_display(result.stored_bytes, format="dicom", max_pixels=10**8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), result.decoded.pixels)
    assert np.array_equal(shown, result.decoded.pixels)


def test_size_is_checked_before_anything_is_parsed() -> None:
    pdf = b"%PDF-1.7\n" + b"x" * 2000
    with pytest.raises(IngestError) as exc:
        _ingest(pdf, max_bytes=1000)
    assert exc.value.code == "too_large"
    assert exc.value.http_status == 413
    assert exc.value.details == {"size": len(pdf), "max_bytes": 1000}


def test_errors_carry_code_message_and_status_for_the_api() -> None:
    with pytest.raises(IngestError) as exc:
        _ingest(b"")
    assert exc.value.as_dict() == {"code": "empty_file", "message": "the uploaded file is empty (0 bytes)"}
    assert exc.value.http_status == 400


def test_ingest_core_does_not_import_django() -> None:
    import subprocess
    import sys

    code = "import sys, clinical.ingest; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_uid_root_reaches_the_de_identified_uids() -> None:
    root = "1.2.826.0.1.3680043.10.999"
    result = ingest_bytes(
        make_cxr_dicom(rows=16, cols=16),
        filename="x.dcm",
        pseudonym_key=KEY,
        max_bytes=5_000_000,
        max_pixels=1_000_000,
        uid_root=root,
    )
    assert result.dicom is not None
    assert all(result.dicom.deid_uids[k].startswith(root + ".") for k in ("study", "series", "sop"))
