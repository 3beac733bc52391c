"""The single entry point the upload page and the STOW-RS endpoint call for each file."""

from __future__ import annotations

import hashlib

import numpy as np

from clinical.ingest.dicom import decode_stored_dicom, ingest_dicom
from clinical.ingest.errors import IngestError
from clinical.ingest.filenames import sanitize_filename
from clinical.ingest.raster import decode_image, encode_png
from clinical.ingest.results import IngestResult
from clinical.ingest.sniff import sniff


def ingest_bytes(
    data: bytes,
    *,
    filename: str,
    pseudonym_key: bytes,
    max_bytes: int,
    max_pixels: int,
    uid_root: str = "2.25",
) -> IngestResult:
    """Check, identify, decode and (for DICOM) de-identify one uploaded file.

    The pixels are decoded (a file whose pixels cannot be decoded is refused here, while the
    sender still waits for the answer) but the viewer PNG is not encoded: ``render_display``
    does that later, from the stored copy, outside the acknowledgement path.

    The size check comes first so nothing parses an oversize body; the type comes from the
    content (``sniff``), never from ``filename``, which is only sanitised and kept as a label.
    ``uid_root`` is the root for de-identified UIDs (an organisation root, or UUID-derived 2.25).
    """
    if len(data) > max_bytes:
        raise IngestError(
            "too_large",
            f"the file is {len(data):,} bytes; the maximum is {max_bytes:,} bytes",
            details={"size": len(data), "max_bytes": max_bytes},
        )
    kind = sniff(data)
    sha256 = hashlib.sha256(data).hexdigest()
    safe_name = sanitize_filename(filename)
    if kind == "dicom":
        result = ingest_dicom(data, pseudonym_key=pseudonym_key, max_pixels=max_pixels, uid_root=uid_root)
        decoded = result.decoded
        return IngestResult(
            stored_bytes=result.deidentified_bytes,
            decoded=decoded,
            sha256=sha256,
            filename=safe_name,
            format=kind,
            dicom=result,
            patient_pseudonym=result.patient_pseudonym,
            scope=result.scope,
            scope_warning=result.scope_warning,
        )
    decoded = decode_image(data, max_pixels=max_pixels)
    return IngestResult(
        stored_bytes=data,
        decoded=decoded,
        sha256=sha256,
        filename=safe_name,
        format=kind,
        dicom=None,
        patient_pseudonym=None,
        scope="unknown",
        scope_warning=None,
    )


def render_display(stored: bytes, *, format: str, max_pixels: int) -> tuple[bytes, np.ndarray]:
    """The viewer PNG and its 8-bit pixels (the model's input) for a file ``ingest_bytes``
    accepted: ``stored`` is its ``stored_bytes`` (de-identified DICOM, or PNG/JPEG as sent)."""
    if format == "dicom":
        decoded = decode_stored_dicom(stored, max_pixels=max_pixels)
    else:
        decoded = decode_image(stored, max_pixels=max_pixels)
    return encode_png(decoded.pixels), decoded.pixels
