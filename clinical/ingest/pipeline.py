"""The single entry point the upload page and the STOW-RS endpoint call for each file."""

from __future__ import annotations

import hashlib

from clinical.ingest.dicom import ingest_dicom
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
            display_png=encode_png(decoded.pixels),
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
        display_png=encode_png(decoded.pixels),
        decoded=decoded,
        sha256=sha256,
        filename=safe_name,
        format=kind,
        dicom=None,
        patient_pseudonym=None,
        scope="unknown",
        scope_warning=None,
    )
