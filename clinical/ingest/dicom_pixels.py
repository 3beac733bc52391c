"""Turn a DICOM dataset's Pixel Data into the 8-bit grayscale picture readers and models see.

The steps follow the DICOM grayscale pipeline (PS3.3 C.11, PS3.4 N.2): stored values ->
Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence) -> VOI LUT (a VOI LUT
Sequence, else Window Center/Width) -> 8 bits -> MONOCHROME1 inverted so dense structures
(bone) are bright like MONOCHROME2. Colour images become luma.

What DICOM contributes to the model input, and what it must not (DESIGN.md section 6: the
same pixels give the same probabilities whatever the format). The picture made here goes to
the model through the same ``mlcore.ml.transforms.model_input`` as a PNG's pixels, so:

* the header's own Modality LUT and VOI LUT/window are applied: they say how the values are
  meant to be seen, and an exported PNG of the film was made with them;
* without a VOI, data of at most 8 stored bits is taken **as stored** (the full range of its
  stored values onto 0..255: an 8-bit image is unchanged, exactly like the same pixels in an
  8-bit PNG) -- never stretched by its own min..max;
* without a VOI, wider data has no scale but the one it uses, and is stretched from its
  lowest to its highest value -- the rule a 16-bit PNG follows in training and in serving
  (``mlcore.ml.data.imaging.stretch_to_uint8``).

Only one frame is ever decoded (``pydicom.pixels.pixel_array(index=...)``), so a long OCT
volume costs one B-scan of memory; which frame, and whether multi-frame is allowed at all,
is decided by the caller (see ``clinical.ingest.dicom``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_voi_lut,
    get_decoder,
    pixel_array,
)
from pydicom.uid import UID

from clinical.ingest.errors import IngestError
from clinical.ingest.results import DecodedImage, DicomInfo
from mlcore.services.imaging import linear_to_uint8 as to_uint8

# Attributes the LUT functions read; copied into a small per-frame dataset so functional
# group values (enhanced multi-frame objects such as OCT) are honoured and the source
# dataset is never mutated by pydicom's in-place type casts.
_LUT_KEYWORDS = (
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
)
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420")


def check_decodable(ds: Dataset) -> UID:
    """Return the transfer syntax if a pixel decoder for it is installed, else raise 415."""
    tsyntax = UID(str(ds.file_meta.TransferSyntaxUID))
    name = tsyntax.name if tsyntax.name != str(tsyntax) else "unknown transfer syntax"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise IngestError(
            "unsupported_transfer_syntax",
            f"transfer syntax {tsyntax} ({name}) cannot be decoded here; send uncompressed "
            "(Explicit/Implicit VR Little Endian), RLE Lossless, JPEG, JPEG-LS or JPEG 2000",
            details={"transfer_syntax_uid": str(tsyntax), "transfer_syntax_name": name},
        )
    return tsyntax


def decode_frame(
    ds: Dataset,
    *,
    frame_index: int | None,
    number_of_frames: int,
    modality: str | None,
) -> DecodedImage:
    """Decode one frame of ``ds`` (already checked for size and transfer syntax)."""
    tsyntax = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        raw = pixel_array(ds, index=frame_index if number_of_frames > 1 else None)
    except (ValueError, RuntimeError, OSError, EOFError, KeyError, AttributeError) as exc:
        raise IngestError(
            "corrupt_dicom",
            f"the Pixel Data could not be decoded as {tsyntax.name}: {exc}",
            details={"transfer_syntax_uid": str(tsyntax)},
        ) from exc
    view = frame_view(ds, frame_index or 0)
    photometric = str(view.get("PhotometricInterpretation", "")).strip().upper()
    rescale: tuple[float, float] | None = None
    if "RescaleSlope" in view and "RescaleIntercept" in view:
        rescale = (float(view.RescaleSlope), float(view.RescaleIntercept))

    voi: Literal["lut", "window", "stored", "minmax"] = "minmax"
    try:
        if photometric in _MONOCHROME and raw.ndim == 2:
            display, voi = _grayscale_display(raw, view)
        elif photometric == "PALETTE COLOR" and raw.ndim == 2:
            rgb = apply_color_lut(raw, view)
            display = _luma(rgb, hi=255.0 if rgb.dtype == np.uint8 else 65535.0)
        elif photometric in _COLOUR and raw.ndim == 3:
            # pydicom converts YBR to RGB while decoding (as_rgb=True).
            display = _luma(raw, hi=float(2 ** int(ds.BitsStored) - 1))
        else:
            raise IngestError(
                "unsupported_image",
                f"Photometric Interpretation {photometric or '(missing)'} with pixel array shape "
                f"{raw.shape} is not supported; accepted: MONOCHROME1, MONOCHROME2, RGB, YBR, "
                "PALETTE COLOR",
            )
    except (ValueError, NotImplementedError, IndexError, KeyError, AttributeError) as exc:
        # pydicom raises these for invalid LUTs, e.g. Window Width < 1 or a bad LUT Descriptor.
        raise IngestError(
            "corrupt_dicom",
            f"the Modality/VOI LUT or palette of this image is invalid: {exc}",
        ) from exc
    spacing, spacing_source = pixel_spacing(ds, frame_index or 0)
    return DecodedImage.of(
        display,
        raw,
        format="dicom",
        bits=int(ds.BitsStored),
        photometric=photometric,
        window=_first_window(view),
        modality=modality,
        frame_count=number_of_frames,
        dicom=DicomInfo(
            transfer_syntax_uid=str(tsyntax),
            transfer_syntax_name=tsyntax.name,
            sop_class_uid=str(ds.SOPClassUID),
            sop_class_name=UID(str(ds.SOPClassUID)).name,
            bits_allocated=int(ds.BitsAllocated),
            bits_stored=int(ds.BitsStored),
            pixel_representation=int(ds.get("PixelRepresentation", 0)),
            rescale=rescale,
            voi=voi,
            number_of_frames=number_of_frames,
            frame_index=frame_index if number_of_frames > 1 else None,
            body_part=str(ds.get("BodyPartExamined", "")).strip() or None,
            pixel_spacing=spacing,
            spacing_source=spacing_source,
        ),
    )


_SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing")


def pixel_spacing(ds: Dataset, index: int = 0) -> tuple[tuple[float, float] | None, str]:
    """(row spacing, column spacing) in mm of frame ``index`` and the attribute it came from.

    Pixel Spacing (0028,0030) is preferred (calibrated in the patient); Imager Pixel Spacing
    (0018,1164) is at the detector plane (not corrected for geometric magnification). Enhanced
    multi-frame objects carry Pixel Spacing in the Pixel Measures functional group. Both are
    "row spacing \\ column spacing": the distance between rows (vertical), then between
    columns (horizontal). Missing, malformed or non-positive values give (None, "").
    """
    sources: list[Any] = []  # per-frame group, shared group, then the top level
    for seq, pick in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(seq)
        if groups and pick < len(groups):
            measures = groups[pick].get("PixelMeasuresSequence")
            if measures:
                sources.append(measures[0])
    sources.append(ds)
    for keyword in _SPACING_KEYWORDS:
        for source in sources:
            value = _spacing_value(source.get(keyword))
            if value is not None:
                return value, keyword
    return None, ""


def _spacing_value(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        items = [float(v) for v in value] if isinstance(value, MultiValue | list | tuple) else [float(value)]
    except (TypeError, ValueError):
        return None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(np.isfinite(v) and v > 0 for v in items):
        return None
    return items[0], items[1]


def frame_view(ds: Dataset, index: int) -> Dataset:
    """The LUT-relevant attributes for frame ``index``: top level, then shared, then per-frame
    functional groups (PS3.3 C.7.6.16), later ones overriding earlier ones."""
    view = Dataset()
    # LUT Data with VR OW is unpacked using the transfer syntax's byte order.
    view.file_meta = ds.file_meta
    for keyword in _LUT_KEYWORDS:
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    groups: list[Any] = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for macro in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            items = group.get(macro)
            if not items:
                continue
            for elem in items[0]:
                if elem.keyword in _LUT_KEYWORDS:
                    setattr(view, elem.keyword, elem.value)
    return view


# Integer images of at most this many distinct stored values are mapped through a lookup
# table (16 bits: 65,536 entries): the Modality LUT, the VOI LUT or window and the 8-bit
# scaling are all pixel-wise, so running them once per possible value and indexing gives the
# same pixels as running them on the image -- one gather instead of five float passes over
# it (about 3 ms less per 1024x1024 image in the STOW-RS acknowledgement).
_LUT_MAX_ENTRIES = 1 << 16


Voi = Literal["lut", "window", "stored", "minmax"]


def _grayscale_display(raw: np.ndarray, view: Dataset) -> tuple[np.ndarray, Voi]:
    has_lut = bool(view.get("VOILUTSequence")) and all(
        view.VOILUTSequence[0].get(k) is not None for k in ("LUTDescriptor", "LUTData")
    )
    has_window = view.get("WindowCenter") is not None and view.get("WindowWidth") is not None
    if (has_lut or has_window) and raw.dtype.kind in "iu" and raw.size > _LUT_MAX_ENTRIES:
        lo, hi = int(raw.min()), int(raw.max())
        if hi - lo < _LUT_MAX_ENTRIES:
            domain = np.arange(lo, hi + 1, dtype=np.int64).astype(raw.dtype).reshape(1, -1)
            table, voi = _grayscale_pixelwise(domain, view)
            offsets = raw if lo == 0 else np.subtract(raw, lo, dtype=np.int32)
            return table[0][offsets], voi
    return _grayscale_pixelwise(raw, view)


def _grayscale_pixelwise(raw: np.ndarray, view: Dataset) -> tuple[np.ndarray, Voi]:
    values = apply_modality_lut(raw, view)
    has_lut = bool(view.get("VOILUTSequence")) and all(
        view.VOILUTSequence[0].get(k) is not None for k in ("LUTDescriptor", "LUTData")
    )
    has_window = view.get("WindowCenter") is not None and view.get("WindowWidth") is not None
    if has_lut:
        if not np.issubdtype(values.dtype, np.integer):
            values = np.rint(values).astype(np.int64)  # a VOI LUT is indexed by integers
        out = apply_voi_lut(values, view, index=0, prefer_lut=True)
        lo, hi = _voi_lut_range(view)
        voi: Voi = "lut"
    elif has_window:
        out = apply_voi_lut(values, view, index=0, prefer_lut=True)
        lo, hi = _window_output_range(view)
        voi = "window"
    elif int(view.BitsStored) <= 8:
        out = values  # as stored: the representable range, like an 8-bit PNG
        lo, hi = _window_output_range(view)
        voi = "stored"
    else:
        out = values
        lo, hi = float(values.min()), float(values.max())
        voi = "minmax"
    display = to_uint8(out, lo, hi)
    if str(view.PhotometricInterpretation).strip().upper() == "MONOCHROME1":
        display = 255 - display  # MONOCHROME1: low values are white; make bone bright
    return display, voi


def _voi_lut_range(view: Dataset) -> tuple[float, float]:
    """Output range of the VOI LUT, taken from its entries: many LUTs declare 16 bits but
    only use 12, and scaling by the declared depth would give a near-black image."""
    item = view.VOILUTSequence[0]
    entries, first_mapped = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    lut = apply_voi(np.arange(first_mapped, first_mapped + entries, dtype=np.int64), view)
    return float(lut.min()), float(lut.max())


def _window_output_range(view: Dataset) -> tuple[float, float]:
    """The [y_min, y_max] that pydicom's apply_windowing maps a window onto (same rules):
    the representable stored values after the Modality LUT."""
    bits = int(view.BitsStored)
    if view.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(view.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    if int(view.get("PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in view and "RescaleIntercept" in view:
        slope, intercept = float(view.RescaleSlope), float(view.RescaleIntercept)
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    return min(y_min, y_max), max(y_min, y_max)


def _first_window(view: Dataset) -> tuple[float, float] | None:
    center, width = view.get("WindowCenter"), view.get("WindowWidth")
    if center is None or width is None:
        return None
    return _first_value(center), _first_value(width)


def _first_value(value: Any) -> float:
    # Window Center/Width have VM 1-n (alternative views); the first is the default view.
    if isinstance(value, MultiValue | list | tuple):
        return float(value[0])
    return float(value)


def _luma(rgb: np.ndarray, *, hi: float) -> np.ndarray:
    """ITU-R BT.601 luma, the same weights Pillow uses for RGB -> L."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    luma = rgb[..., :3].astype(np.float32) @ weights
    return to_uint8(luma, 0.0, hi)
