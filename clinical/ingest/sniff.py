"""Decide what an upload is from its bytes, never from its name.

A file's extension and the client's Content-Type are claims; the first bytes are evidence.
Everything that is not PNG, JPEG or DICOM is refused here, and the common look-alikes (PDF,
TIFF, ZIP, text...) are named so the sender knows what they actually sent.
"""

from __future__ import annotations

import io
from typing import Literal

import pydicom
from pydicom.uid import UID

from clinical.ingest.errors import IngestError

ImageKind = Literal["png", "jpeg", "dicom"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
DICOM_PREFIX_LEN = 128
DICOM_MAGIC = b"DICM"
ACCEPTED = "accepted: PNG, JPEG, DICOM"
SOP_CLASS_UID_TAG = 0x00080016
SOP_INSTANCE_UID_TAG = 0x00080018

# (prefix, offset, name) of formats people upload by mistake.
_KNOWN_OTHERS: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "PDF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "a JPEG 2000 file (not wrapped in DICOM)"),
    (b"\xff\x4f\xff\x51", 0, "a JPEG 2000 codestream (not wrapped in DICOM)"),
    (b"WEBP", 8, "WebP"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"\x93NUMPY", 0, "a NumPy array file"),
)


def sniff(data: bytes) -> ImageKind:
    """Return "png", "jpeg" or "dicom" for ``data``; raise IngestError for anything else.

    DICOM is recognised by the Part 10 "DICM" marker at offset 128, or, for raw datasets sent
    without the preamble and meta header, by parsing it and finding group 0008 attributes.
    """
    if not data:
        raise IngestError("empty_file")
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SOI):
        return "jpeg"
    if data[DICOM_PREFIX_LEN : DICOM_PREFIX_LEN + 4] == DICOM_MAGIC:
        return "dicom"
    if _looks_like_raw_dicom(data):
        return "dicom"
    what = describe_content(data)
    raise IngestError(
        "unsupported_type",
        f"content is {what}, not an image; {ACCEPTED}",
        details={"detected": what},
    )


def describe_content(data: bytes) -> str:
    """Name what ``data`` probably is, for error messages."""
    for prefix, offset, name in _KNOWN_OTHERS:
        if data[offset : offset + len(prefix)] == prefix:
            return name
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            return "HTML"
        if lowered.startswith("<?xml") or lowered.startswith("<svg"):
            return "XML/SVG"
        return "text"
    return f"an unrecognised binary format (starts with 0x{data[:8].hex()})"


def _looks_like_raw_dicom(data: bytes) -> bool:
    """True for a DICOM dataset written without preamble and "DICM" (old PACS exports).

    A cheap check of the first tag's group keeps random binaries away from the parser; the
    parse itself stops before pixel data so a large file costs little. Having *some* group
    0008 element is too weak (a few lucky bytes parse as one), so a valid SOP Class or SOP
    Instance UID - present in every composite object - is required.
    """
    if len(data) < 8:
        return False
    group_le = int.from_bytes(data[0:2], "little")
    group_be = int.from_bytes(data[0:2], "big")
    if group_le not in (0x0002, 0x0008) and group_be not in (0x0002, 0x0008):
        return False
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        # Raw values, so a junk value is judged here rather than warned about by pydicom.
        for tag in (SOP_CLASS_UID_TAG, SOP_INSTANCE_UID_TAG):
            item = ds.get_item(tag)
            if item is None or not item.value:
                continue
            value = item.value
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return UID(text.rstrip("\x00 ")).is_valid
        return False
    except Exception:
        return False
