"""Pure-Python image ingest core shared by the upload page and the DICOMweb STOW-RS endpoint.

No Django, no database, no storage: bytes in, plain dataclasses out (``results``), bad input
out as ``IngestError`` with a stable ``code`` and an HTTP status. The Django service stores
``IngestResult.stored_bytes`` (de-identified DICOM, or the PNG/JPEG as uploaded); the viewer
PNG is rendered from that stored copy by ``render_display`` (in the worker or on first view),
so a sender's acknowledgement does not wait for PNG encoding. The service keeps
``DicomIngestResult.original_uids``/``accession_number_original`` only in the protected
re-identification mapping.

Pipeline (``ingest_bytes``): size check -> ``sniff`` (content, not extension) ->
PNG/JPEG: ``decode_image`` (bomb guard before decoding, truncation is an error) |
DICOM: ``ingest_dicom`` (transfer syntax check, pixel limit, one frame decoded through the
Modality and VOI LUTs, PS3.15 Basic Profile de-identification with keyed pseudonym and keyed
UID remap, re-encoded in the original transfer syntax).

Multi-frame: CR/DX with more than one frame are refused; OCT (OPT) volumes show the central
frame ``n // 2`` and record it in ``DicomInfo.frame_index``; see ``clinical.ingest.dicom``.
"""

from clinical.ingest.deid import patient_pseudonym, remap_uid
from clinical.ingest.dicom import classify_scope, ingest_dicom
from clinical.ingest.errors import INGEST_ERROR_CODES, IngestError
from clinical.ingest.filenames import sanitize_filename
from clinical.ingest.pipeline import ingest_bytes, render_display
from clinical.ingest.raster import decode_image, encode_png
from clinical.ingest.results import DecodedImage, DicomInfo, DicomIngestResult, IngestResult
from clinical.ingest.sniff import sniff

__all__ = [
    "INGEST_ERROR_CODES",
    "DecodedImage",
    "DicomInfo",
    "DicomIngestResult",
    "IngestError",
    "IngestResult",
    "classify_scope",
    "decode_image",
    "encode_png",
    "ingest_bytes",
    "ingest_dicom",
    "patient_pseudonym",
    "remap_uid",
    "render_display",
    "sanitize_filename",
    "sniff",
]
