"""Plain data the ingest core hands to the Django service layer (no models, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MODALITY_FOR_RASTER = "OT"  # DICOM "other": a PNG/JPEG carries no modality of its own

Scope = Literal["cxr", "oct", "unknown"]


@dataclass(frozen=True, kw_only=True)
class DicomInfo:
    """DICOM facts about how the display pixels were produced (useful for audit and viewer)."""

    transfer_syntax_uid: str
    transfer_syntax_name: str
    sop_class_uid: str
    sop_class_name: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    rescale: tuple[float, float] | None  # (slope, intercept) when present
    # which VOI step produced the display pixels: the header's LUT or window, "stored" (8-bit
    # data without a VOI, taken as stored) or "minmax" (wider data without a VOI)
    voi: Literal["lut", "window", "stored", "minmax"]
    number_of_frames: int
    frame_index: int | None  # frame shown (0-based) when the object has several, else None
    body_part: str | None
    # (row spacing, column spacing) in mm, i.e. (vertical, horizontal) as DICOM orders it, and
    # the attribute it came from ("PixelSpacing" or "ImagerPixelSpacing"); None/"" when absent.
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str = ""


@dataclass(frozen=True, kw_only=True, eq=False)
class DecodedImage:
    """An image ready for the viewer and the model.

    ``pixels`` is always uint8, shape (H, W), grayscale, "bright = dense" (MONOCHROME1 already
    inverted), after the Modality and VOI LUTs for DICOM. ``pixels_raw`` is what was stored,
    before any LUT: uint8/uint16/int16 (H, W), or (H, W, 3) for colour.
    """

    pixels: np.ndarray
    pixels_raw: np.ndarray
    width: int
    height: int
    format: Literal["png", "jpeg", "dicom"]
    bits: int
    photometric: str
    window: tuple[float, float] | None  # (center, width) in modality units, DICOM only
    modality: str | None
    frame_count: int = 1
    dicom: DicomInfo | None = None

    @classmethod
    def of(cls, display: np.ndarray, raw: np.ndarray, **facts: object) -> DecodedImage:
        """Built from the 8-bit picture and the stored pixels; size comes from the picture."""
        height, width = display.shape
        return cls(pixels=np.ascontiguousarray(display, dtype=np.uint8), pixels_raw=raw,
                   width=int(width), height=int(height), **facts)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class StudyDescriptors:
    age_band: str = ""
    sex: str = ""
    body_part: str = ""
    view_position: str = ""
    description: str = ""


@dataclass(frozen=True, kw_only=True, eq=False)
class DicomIngestResult:
    """A DICOM object decoded and de-identified.

    ``original_uids`` and ``accession_number_original`` are re-identifying: the service must
    keep them only in the protected mapping table, never on the study rows readers see.
    """

    decoded: DecodedImage
    deidentified_bytes: bytes
    original_uids: dict[str, str]
    deid_uids: dict[str, str]
    patient_pseudonym: str
    modality: str | None
    accession_number_original: str | None
    scope: Scope
    scope_warning: str | None
    deid_warnings: tuple[str, ...] = field(default=())
    # Burned In Annotation YES: identifying text may be in the pixels, which no header
    # de-identification removes (the service warns, or refuses by policy).
    burned_in_annotation: bool = False
    # Patient module as sent (PatientID, PatientName, IssuerOfPatientID, PatientBirthDate,
    # PatientSex): re-identifying, kept only in the protected mapping so that results returned
    # to the source PACS file under the same patient and study there.
    original_patient: dict[str, str] = field(default_factory=dict)
    # What tells worklist rows apart without identifying anyone, from the original header
    # (``clinical.ingest.descriptors``): age band, M/F/O, body part, view, vocabulary-only
    # description. Safe to keep on the study row.
    descriptors: StudyDescriptors = field(default_factory=StudyDescriptors)


@dataclass(frozen=True, kw_only=True, eq=False)
class IngestResult:
    """Everything the service stores for one upload.

    ``stored_bytes`` is the de-identified DICOM, or the PNG/JPEG exactly as uploaded;
    ``sha256`` is of the *uploaded* bytes so re-uploads of the same file are recognised.
    ``decoded.pixels`` is what the viewer shows; its PNG is rendered later (``render_display``).
    PNG/JPEG carry no metadata to judge scope from: their ``scope`` is "unknown" without a
    warning, and the model's out-of-scope detector decides.
    """

    stored_bytes: bytes
    decoded: DecodedImage
    sha256: str
    filename: str
    format: Literal["png", "jpeg", "dicom"]
    dicom: DicomIngestResult | None
    patient_pseudonym: str | None
    scope: Scope
    scope_warning: str | None
