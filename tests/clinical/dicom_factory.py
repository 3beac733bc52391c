"""Write real DICOM Part 10 files with pydicom for tests (ingest, API, STOW-RS, Orthanc).

Every object carries realistic PHI (names, IDs, dates, institution, a private block, an overlay,
a request sequence) so de-identification tests have something to remove, and a synthetic
phantom so decoded images look like what they claim to be. The PHI strings are distinctive on
purpose: tests search the de-identified bytes for them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

SOP_CLASS = {
    "DX": UID("1.2.840.10008.5.1.4.1.1.1.1"),  # Digital X-Ray Image Storage - For Presentation
    "CR": UID("1.2.840.10008.5.1.4.1.1.1"),  # Computed Radiography Image Storage
    "OPT": UID("1.2.840.10008.5.1.4.1.1.77.1.5.4"),  # Ophthalmic Tomography Image Storage
    "MR": UID("1.2.840.10008.5.1.4.1.1.4"),  # MR Image Storage
}
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
NATIVE_SYNTAXES = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}

# PHI written into every object unless overridden; tests assert none of it survives.
PHI: dict[str, str] = {
    "PatientBirthDate": "19610923",
    "PatientSex": "F",
    "PatientAge": "063Y",
    "PatientAddress": "42 Wallaby Way, Sydney",
    "PatientTelephoneNumbers": "+61-2-5550-1234",
    "OtherPatientIDs": "OLDMRN-4711",
    "EthnicGroup": "Martian",
    "InstitutionName": "St Elsewhere General Hospital",
    "InstitutionAddress": "1 Hospital Road, Springfield",
    "ReferringPhysicianName": "House^Gregory",
    "PerformingPhysicianName": "Quinn^Michaela",
    "OperatorsName": "Radtech^Rita",
    "StationName": "XR-ROOM-7",
    "DeviceSerialNumber": "SN-99887766",
    "StudyID": "STUDY-31337",
    "StudyDate": "20240315",
    "StudyTime": "101112",
    "SeriesDate": "20240315",
    "AcquisitionDate": "20240315",
    "ContentDate": "20240315",
    "ContentTime": "101113",
    "ImageComments": "pt confused, ask daughter Anna",
    "RequestingPhysician": "Kildare^James",
}
PRIVATE_CREATOR = "RADVIEWER TEST"
PRIVATE_VALUE = "PRIVATE-PHI-VALUE-123"


def chest_phantom(rows: int, cols: int, *, max_value: int) -> np.ndarray:
    """A frontal chest radiograph caricature: body, dark lungs, bright mediastinum and spine."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y, x = y / max(rows - 1, 1), x / max(cols - 1, 1)

    def ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0

    img = np.full((rows, cols), 0.05, dtype=np.float32)  # air outside the body
    body = ellipse(0.55, 0.5, 0.5, 0.46)
    img[body] = 0.55  # soft tissue
    img[ellipse(0.48, 0.3, 0.32, 0.15)] = 0.2  # right lung
    img[ellipse(0.48, 0.7, 0.32, 0.15)] = 0.2  # left lung
    img[ellipse(0.62, 0.56, 0.16, 0.13)] = 0.7  # heart
    img[(np.abs(x - 0.5) < 0.04) & body] = 0.9  # spine
    return np.rint(img * max_value).astype(np.uint16)


def retina_phantom(rows: int, cols: int, *, frame: int, frames: int) -> np.ndarray:
    """An OCT B-scan caricature: bright retinal layers dipping at the fovea (central frame)."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    offset = abs(frame - frames // 2) / max(frames, 1)
    dip = (0.12 - 0.1 * offset) * np.exp(-(((x / cols) - 0.5) ** 2) / 0.01)
    surface = (0.35 + dip) * rows
    img = np.where((y > surface) & (y < surface + 0.08 * rows), 200, 40)
    img = np.where((y > 0.6 * rows) & (y < 0.66 * rows), 230, img)  # RPE band
    return img.astype(np.uint16)


def make_cxr_dicom(
    *,
    rows: int = 256,
    cols: int = 256,
    bits: int = 16,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    patient_name: str = "Doe^Jane",
    patient_id: str = "MRN123",
    issuer: str | None = None,
    accession: str = "ACC1",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    with_pixels: bool = True,
    frames: int = 1,
    modality: str = "DX",
    pixels: np.ndarray | None = None,
    private_tag: bool = True,
    overlay: bool = True,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    body_part: str | None = "CHEST",
    referenced_sop_uid: str | None = None,
    extra: Mapping[str, Any] | None = None,
    omit: tuple[str, ...] = (),
) -> bytes:
    """A DICOM Part 10 file as bytes; see the module docstring for the PHI it carries.

    ``bits`` 16 stores 12 significant bits, 8 stores 8. ``pixels`` (rows x cols, or frames x
    rows x cols) replaces the phantom. ``transfer_syntax`` may be native, RLE Lossless,
    JPEG-LS Lossless, JPEG 2000 (pydicom encoders; J2K needs >= 32 x 32) or JPEG Baseline
    (8-bit only, encoded with Pillow). ``extra`` sets further attributes by keyword; ``omit``
    leaves attributes out by keyword (a Type 2 attribute a real modality does not send).
    """
    ds = _base_dataset(
        modality=modality,
        patient_name=patient_name,
        patient_id=patient_id,
        issuer=issuer,
        accession=accession,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        body_part=body_part,
        referenced_sop_uid=referenced_sop_uid,
    )
    if private_tag:
        block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
        block.add_new(0x01, "LO", PRIVATE_VALUE)
    if with_pixels:
        stored = 12 if bits == 16 else 8
        if pixels is None:
            pixels = _default_pixels(modality, rows, cols, frames, stored, photometric)
        _set_pixels(ds, pixels, bits=bits, stored=stored, photometric=photometric)
        if overlay:
            ds.add_new(0x60000010, "US", rows)
            ds.add_new(0x60000011, "US", cols)
            ds.add_new(0x60000022, "LO", "OVERLAY-PHI-Doe")
            ds.add_new(0x60003000, "OW", b"\x00" * ((rows * cols + 15) // 16 * 2))
    if window is not None:
        if modality == "OPT":
            _set_frame_window(ds, window)
        else:
            ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    for keyword in omit:
        delattr(ds, keyword)
    return _write(ds, transfer_syntax)


def make_oct_dicom(*, frames: int = 5, rows: int = 64, cols: int = 64, **kwargs: Any) -> bytes:
    """An Ophthalmic Tomography (OPT) volume of ``frames`` 8-bit B-scans."""
    kwargs.setdefault("body_part", "EYE")
    return make_cxr_dicom(modality="OPT", frames=frames, rows=rows, cols=cols, bits=8, **kwargs)


def to_raw_dataset(data: bytes) -> bytes:
    """The same object written without preamble, "DICM" and meta header (old PACS exports)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.file_meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True)
    return buf.getvalue()


def with_undecodable_syntax(data: bytes, transfer_syntax: str) -> bytes:
    """Relabel ``data`` with ``transfer_syntax`` (e.g. MPEG2) and junk encapsulated pixels."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3not-really-mpeg" * 4])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _base_dataset(
    *,
    modality: str,
    patient_name: str,
    patient_id: str,
    issuer: str | None,
    accession: str,
    study_uid: str | None,
    series_uid: str | None,
    sop_uid: str | None,
    body_part: str | None,
    referenced_sop_uid: str | None,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SOP_CLASS.get(modality, SECONDARY_CAPTURE)
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.AccessionNumber = accession
    ds.Manufacturer = "RadViewer Test Factory"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    if body_part:
        ds.BodyPartExamined = body_part
    if modality in ("DX", "CR"):
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ViewPosition = "PA"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    request = Dataset()
    request.AccessionNumber = accession
    request.RequestedProcedureID = f"RP-{accession}"
    ds.RequestAttributesSequence = Sequence([request])
    if referenced_sop_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = referenced_sop_uid
        ds.ReferencedImageSequence = Sequence([ref])
    return ds


def _default_pixels(modality: str, rows: int, cols: int, frames: int, stored: int, photometric: str) -> np.ndarray:
    max_value = 2**stored - 1
    if modality == "OPT":
        stack = [retina_phantom(rows, cols, frame=k, frames=frames) for k in range(frames)]
    else:
        base = chest_phantom(rows, cols, max_value=max_value)
        stack = [np.clip(base.astype(np.int64) + 7 * k, 0, max_value) for k in range(frames)]
    arr = np.stack(stack).astype(np.uint16)
    if photometric == "MONOCHROME1":
        arr = max_value - arr  # same anatomy: bone stored dark-valued
    if photometric == "RGB":
        scaled = (arr.astype(np.float32) * 255 / max_value).astype(np.uint8)
        arr = np.stack([scaled, scaled // 2, scaled // 3], axis=-1)
    return arr[0] if frames == 1 else arr


def _set_pixels(ds: Dataset, pixels: np.ndarray, *, bits: int, stored: int, photometric: str) -> None:
    colour = photometric == "RGB"
    frames = pixels.shape[0] if pixels.ndim == (4 if colour else 3) else 1
    rows, cols = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
        bits = stored = 8
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    dtype = np.uint16 if bits == 16 else np.uint8
    ds.PixelData = np.ascontiguousarray(pixels, dtype=dtype).tobytes()
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"


def _set_frame_window(ds: Dataset, window: tuple[float, float]) -> None:
    # Enhanced multi-frame objects put the window in the functional groups (PS3.3 C.7.6.16).
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = window
    group = Dataset()
    group.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([group])


def _write(ds: Dataset, transfer_syntax: str) -> bytes:
    syntax = UID(transfer_syntax)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "PixelData" in ds and syntax == JPEGBaseline8Bit:
        _encode_jpeg_baseline(ds)
    elif "PixelData" in ds and syntax not in NATIVE_SYNTAXES:
        ds.compress(syntax)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.SourceApplicationEntityTitle = "STELSEWHERE_PACS"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _encode_jpeg_baseline(ds: Dataset) -> None:
    """pydicom has no JPEG Baseline encoder; Pillow writes the frames, pydicom wraps them."""
    if ds.BitsAllocated != 8 or ds.SamplesPerPixel != 1:
        raise ValueError("JPEG Baseline in this factory needs 8-bit grayscale pixels")
    arr = ds.pixel_array
    frames = arr if arr.ndim == 3 else arr[np.newaxis]
    encoded = []
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame.astype(np.uint8)).save(buf, format="JPEG", quality=95)
        encoded.append(buf.getvalue())
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
