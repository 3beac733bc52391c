"""Ingest one DICOM object: read, check, decode one frame, de-identify, re-encode.

Multi-frame decision
--------------------
* Chest X-ray modalities (CR, DX) with Number of Frames > 1 are refused
  (``multiframe_not_supported``, 422): a projection radiograph is one frame, and a
  multi-frame CR/DX object is a cine, a stitched series or a mis-export; guessing which frame
  the reader wanted would show the model (and the reader) the wrong image.
* Retinal OCT (OPT) volumes are accepted and the central frame, index ``n // 2`` (0-based),
  is decoded: macular cubes are centred on the fovea, and the foveal B-scan is the usual
  triage view (and what the public OCT training sets contain). ``DicomInfo.frame_index``
  records which frame was shown; the stored copy keeps every frame.
* Other modalities (out of scope anyway) get the central frame as well, so the out-of-scope
  detector and the reader still have something to look at.

Only the chosen frame is decoded, and Rows x Columns is checked against ``max_pixels``
before decoding, so a small file declaring a huge compressed frame is refused cheaply.

Scope
-----
CR and DX are chest X-ray, OPT (and OP) is retinal OCT ("OCT" is accepted from exporters that
write it, though it is not a DICOM defined term). Everything else - and a CR/DX whose Body Part
Examined is explicitly not the chest - is scope "unknown" with a ``scope_warning`` the page
can show; it is not refused, because the reader may still want the image stored.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from clinical.ingest.deid import burned_in_annotation, check_key, check_uid_root, deidentify, patient_pseudonym
from clinical.ingest.descriptors import age_band, coded, sex_code, study_description
from clinical.ingest.dicom_pixels import check_decodable, decode_frame, frame_view
from clinical.ingest.errors import IngestError
from clinical.ingest.results import DecodedImage, DicomIngestResult, Scope, StudyDescriptors
from clinical.ingest.sniff import sniff

CXR_MODALITIES = frozenset({"CR", "DX"})
# OPT is Ophthalmic Tomography; OP (ophthalmic photography) is taken as retinal too, so an
# eye image is never given a chest class -- the out-of-scope detector still judges whether
# it looks like the OCT B-scans the model knows.
OCT_MODALITIES = frozenset({"OPT", "OCT", "OP"})
CHEST_BODY_PARTS = frozenset({"CHEST", "THORAX", "LUNG"})
SCOPE_TEXT = "chest X-ray: CR/DX; retinal OCT: OPT/OP"
IMPLEMENTATION_VERSION_NAME = "RADVIEWER_1"
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_PIXEL_REQUIRED = ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation")
_READ_ERRORS = (
    InvalidDicomError,
    ValueError,
    EOFError,
    OSError,
    struct.error,
    KeyError,
    IndexError,
    TypeError,
    NotImplementedError,
)
# What pydicom raises for a malformed value met only while de-identifying or writing.
_WRITE_ERRORS = (ValueError, struct.error, OverflowError, EOFError)


ORIGINAL_PATIENT_KEYWORDS = ("PatientID", "PatientName", "IssuerOfPatientID", "PatientBirthDate", "PatientSex")


def ingest_dicom(data: bytes, *, pseudonym_key: bytes, max_pixels: int, uid_root: str = "2.25") -> DicomIngestResult:
    """Decode and de-identify one DICOM Part 10 file (or raw dataset) held in ``data``.

    Raises IngestError: ``corrupt_dicom``, ``dicom_no_pixels``, ``unsupported_transfer_syntax``,
    ``too_many_pixels``, ``multiframe_not_supported``, ``unsupported_image``.
    """
    check_key(pseudonym_key)
    check_uid_root(uid_root)  # config errors must not surface later as "corrupt_dicom"
    kind = sniff(data)
    if kind != "dicom":
        raise IngestError(
            "unsupported_type",
            f"content is {kind.upper()}, expected DICOM",
            details={"detected": kind},
        )
    ds = _read(data)
    modality = str(ds.get("Modality", "")).strip().upper() or None
    scope, scope_warning = classify_scope(modality, ds.get("BodyPartExamined"))

    tsyntax = check_decodable(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols > max_pixels:
        raise IngestError(
            "too_many_pixels",
            f"{cols}x{rows} = {rows * cols:,} pixels per frame exceeds the limit of {max_pixels:,} pixels",
            details={"width": cols, "height": rows, "max_pixels": max_pixels},
        )
    frames = _number_of_frames(ds)
    frame_index = choose_frame(frames, scope=scope, modality=modality)
    decoded = decode_frame(ds, frame_index=frame_index, number_of_frames=frames, modality=modality)

    original_uids = _uids(ds)
    _check_uids(original_uids)
    accession = _kept_text(ds, "AccessionNumber") or None
    original_patient = {keyword: _kept_text(ds, keyword) for keyword in ORIGINAL_PATIENT_KEYWORDS}
    pseudonym = patient_pseudonym(
        pseudonym_key=pseudonym_key,
        patient_id=str(ds.get("PatientID", "") or ""),
        issuer=str(ds.get("IssuerOfPatientID", "") or ""),
        study_uid=original_uids["study"],
    )
    burned_in = burned_in_annotation(ds)
    descriptors = study_descriptors(ds, modality=modality)  # before the header is cleaned
    try:
        deid_warnings = deidentify(ds, pseudonym_key=pseudonym_key, pseudonym=pseudonym, uid_root=uid_root)
        deid_bytes = _write(ds, tsyntax)
    except _WRITE_ERRORS as exc:
        # Values are parsed lazily, so a malformed element can surface only here.
        raise IngestError("corrupt_dicom", f"the DICOM dataset is malformed: {exc}") from exc
    return DicomIngestResult(
        decoded=decoded,
        deidentified_bytes=deid_bytes,
        original_uids=original_uids,
        deid_uids=_uids(ds),
        patient_pseudonym=pseudonym,
        modality=modality,
        accession_number_original=accession,
        original_patient=original_patient,
        scope=scope,
        scope_warning=scope_warning,
        deid_warnings=tuple(deid_warnings),
        burned_in_annotation=burned_in,
        descriptors=descriptors,
    )


def study_descriptors(ds: pydicom.Dataset, *, modality: str | None) -> StudyDescriptors:
    """Age band, sex, body part, view and a vocabulary-only description from the original
    header (``clinical.ingest.descriptors``). A value that cannot be read is left blank: these
    help a reader pick a row, they are no reason to refuse an image."""

    def text(keyword: str) -> str:
        try:
            return str(ds.get(keyword, "") or "").strip(_PADDING)
        except _READ_ERRORS:
            return ""

    study_date = next((d for d in (text(k) for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"))
                       if d), "")
    body_part, view = coded(text("BodyPartExamined")), coded(text("ViewPosition"))
    return StudyDescriptors(
        age_band=age_band(patient_age=text("PatientAge"), birth_date=text("PatientBirthDate"),
                          study_date=study_date),
        sex=sex_code(text("PatientSex")),
        body_part=body_part,
        view_position=view,
        description=study_description(descriptions=(text("StudyDescription"), text("SeriesDescription")),
                                      modality=modality or "", body_part=body_part, view=view),
    )


def decode_stored_dicom(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode the displayed frame of a DICOM object RadViewer already ingested (its stored,
    de-identified copy): the same checks, frame choice and LUTs as ``ingest_dicom``, without
    de-identifying again. Used to render the viewer PNG outside the acknowledgement path."""
    ds, modality, frames, frame_index = _stored_displayed_frame(data, max_pixels=max_pixels)
    return decode_frame(ds, frame_index=frame_index, number_of_frames=frames, modality=modality)


def _stored_displayed_frame(data: bytes, *, max_pixels: int) -> tuple[pydicom.Dataset, str | None, int, int]:
    """A stored DICOM read and checked, with its modality, frame count and displayed frame."""
    ds = _read(data)
    modality = str(ds.get("Modality", "")).strip().upper() or None
    scope, _ = classify_scope(modality, ds.get("BodyPartExamined"))
    check_decodable(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols > max_pixels:
        raise IngestError("too_many_pixels", f"{cols}x{rows} pixels per frame exceeds {max_pixels:,}")
    frames = _number_of_frames(ds)
    return ds, modality, frames, choose_frame(frames, scope=scope, modality=modality)


@dataclass(frozen=True, kw_only=True, eq=False)
class StoredFrame:
    """The stored values of the displayed frame of an ingested DICOM, for the viewer's
    pixel-value probe: ``stored`` (rows x cols, or rows x cols x 3 for colour) as in Pixel
    Data, and the frame's Modality LUT attributes to rescale one value at a time."""

    stored: np.ndarray
    view: pydicom.Dataset
    rescale_type: str

    def value_at(self, x: int, y: int) -> tuple[list[float], list[float] | None]:
        """(stored value(s), Modality LUT output or None for colour) at column x, row y."""
        raw = self.stored[y, x]
        stored = [float(v) for v in np.atleast_1d(raw)]
        if self.stored.ndim != 2:
            return stored, None
        try:
            rescaled = apply_modality_lut(np.asarray([raw]), self.view)
        except (ValueError, KeyError, IndexError, AttributeError):
            return stored, None
        return stored, [float(np.asarray(rescaled).ravel()[0])]


def read_stored_frame(data: bytes, *, max_pixels: int) -> StoredFrame:
    """The displayed frame of a stored (de-identified) DICOM, undecoded by any LUT."""
    ds, _, frames, frame_index = _stored_displayed_frame(data, max_pixels=max_pixels)
    try:
        stored = pixel_array(ds, index=frame_index if frames > 1 else None)
    except (ValueError, RuntimeError, OSError, EOFError, KeyError, AttributeError) as exc:
        raise IngestError("corrupt_dicom", f"the Pixel Data could not be decoded: {exc}") from exc
    view = frame_view(ds, frame_index or 0)
    rescale_type = str(view.get("RescaleType", "") or "").strip()
    if not rescale_type and str(ds.get("Modality", "")).upper() == "CT":
        rescale_type = "HU"
    return StoredFrame(stored=stored, view=view, rescale_type=rescale_type)


def classify_scope(modality: str | None, body_part: object = None) -> tuple[Scope, str | None]:
    """Map Modality (and, for X-ray, Body Part Examined) onto the model's scope."""
    if modality in CXR_MODALITIES:
        part = str(body_part or "").strip().upper()
        if part and part not in CHEST_BODY_PARTS:
            return "unknown", (
                f"Body Part Examined {part} is outside the model's scope ({SCOPE_TEXT}); "
                "the model is trained on chest radiographs only"
            )
        return "cxr", None
    if modality in OCT_MODALITIES:
        return "oct", None
    shown = modality or "(missing)"
    return "unknown", f"Modality {shown} is outside the model's scope ({SCOPE_TEXT})"


def choose_frame(frames: int, *, scope: Scope, modality: str | None) -> int | None:
    """The frame to decode (see the module docstring), or None for single-frame objects."""
    if frames <= 1:
        return None
    if scope == "cxr":
        raise IngestError(
            "multiframe_not_supported",
            f"{modality} object has {frames} frames; chest X-ray triage takes single-frame "
            "images - send each projection as its own instance",
            details={"number_of_frames": frames, "modality": modality},
        )
    return frames // 2


def _read(data: bytes) -> pydicom.FileDataset:
    has_preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
        missing = [k for k in _REQUIRED if not str(ds.get(k, "") or "").strip()]
        if missing:
            # Every composite object has these; without them the file is cut short or not
            # an object at all, whatever else is (not) there.
            raise IngestError(
                "corrupt_dicom",
                f"required attributes are missing or empty: {', '.join(missing)}",
            )
        if "PixelData" not in ds:
            sop = UID(str(ds.SOPClassUID)).name
            raise IngestError(
                "dicom_no_pixels",
                f"{sop} has no Pixel Data (7FE0,0010); only image objects can be ingested",
            )
        missing = [k for k in _PIXEL_REQUIRED if ds.get(k) in (None, "")]
        if missing:
            raise IngestError("corrupt_dicom", f"required attributes are missing or empty: {', '.join(missing)}")
    except IngestError:
        raise
    except _READ_ERRORS as exc:
        raise IngestError("corrupt_dicom", f"the DICOM file cannot be read: {exc}") from exc
    if not ds.file_meta.get("TransferSyntaxUID"):
        # A raw dataset (no meta header): its encoding was inferred while reading.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


def _number_of_frames(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError) as exc:
        raise IngestError("corrupt_dicom", f"Number of Frames is not a number: {exc}") from exc


# PS3.5 9.1: a UID is digits in components separated by dots, at most 64 characters.
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_UID_MAX = 64
# Values kept from the sender's header (the protected mapping, the study's accession number):
# the longest each VR allows (PS3.5 6.2; a PN of three component groups of 64), no NUL.
_PADDING = " \t\r\n\x00"
_KEPT_MAX = {"AccessionNumber": 64, "PatientID": 64, "IssuerOfPatientID": 64, "PatientName": 324,
             "PatientBirthDate": 8, "PatientSex": 16}


def _check_uids(uids: dict[str, str]) -> None:
    for name, value in uids.items():
        if len(value) > _UID_MAX or not _UID.fullmatch(value):
            label = {"sop_class": "SOP Class"}.get(name, f"{name.title()} Instance")
            raise IngestError(
                "corrupt_dicom",
                f"the {label} UID {value[:80]!r} is not a DICOM UID (digits and dots, at most {_UID_MAX} characters)",
            )


def _kept_text(ds: pydicom.Dataset, keyword: str) -> str:
    """``keyword``'s value as text, stripped of space and NUL padding; a NUL inside, or a value
    longer than its VR allows, is refused (no database keeps it as sent)."""
    try:
        value = str(ds.get(keyword, "") or "").strip(_PADDING)
    except _READ_ERRORS as exc:
        raise IngestError("corrupt_dicom", f"{keyword} cannot be read: {exc}") from exc
    if "\x00" in value:
        raise IngestError("corrupt_dicom", f"{keyword} contains a NUL character")
    if len(value) > _KEPT_MAX[keyword]:
        raise IngestError("corrupt_dicom",
                          f"{keyword} is {len(value):,} characters long; its VR allows {_KEPT_MAX[keyword]}")
    return value


def _uids(ds: pydicom.Dataset) -> dict[str, str]:
    return {
        "study": str(ds.StudyInstanceUID),
        "series": str(ds.SeriesInstanceUID),
        "sop": str(ds.SOPInstanceUID),
        "sop_class": str(ds.SOPClassUID),
    }


def _write(ds: pydicom.FileDataset, tsyntax: UID) -> bytes:
    """Serialise with a fresh meta header (the old one named the original SOP Instance UID
    and the sending application) and a zeroed preamble (it may hold a TIFF header or text)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = tsyntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
