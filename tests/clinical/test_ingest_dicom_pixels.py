"""DICOM decoding: LUT pipeline, photometrics, compressed syntaxes, refusals, multi-frame."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from clinical.ingest import IngestError, ingest_dicom
from tests.clinical.dicom_factory import (
    make_cxr_dicom,
    make_oct_dicom,
    to_raw_dataset,
    with_undecodable_syntax,
)

KEY = b"test-pseudonym-key-0123456789abcdef"
MAX_PIXELS = 1_000_000


def _ingest(data: bytes, **kwargs: object):
    return ingest_dicom(data, pseudonym_key=KEY, max_pixels=MAX_PIXELS, **kwargs)


def _ramp(rows: int = 32, cols: int = 64, top: int = 4095) -> np.ndarray:
    return np.tile(np.linspace(0, top, cols).round().astype(np.uint16), (rows, 1))


def test_sixteen_bit_with_rescale_and_window_follows_the_lut_pipeline() -> None:
    raw = _ramp()
    # Stored 0..4095, rescale to -1024..3071 (CT-like units); window 0 +- 500 in those units.
    result = _ingest(make_cxr_dicom(rows=32, cols=64, pixels=raw, rescale=(1.0, -1024.0), window=(0.0, 1000.0)))
    decoded = result.decoded
    assert decoded.pixels_raw.dtype == np.uint16
    assert np.array_equal(decoded.pixels_raw, raw)
    assert decoded.dicom is not None
    assert decoded.dicom.rescale == (1.0, -1024.0)
    assert decoded.dicom.voi == "window"
    assert decoded.window == (0.0, 1000.0)
    modality_values = raw[0].astype(float) - 1024.0
    row = decoded.pixels[0]
    assert (row[modality_values < -500] == 0).all()  # below the window: black
    assert (row[modality_values > 500] == 255).all()  # above the window: white
    inside = np.abs(modality_values) < 400
    assert (np.diff(row[inside].astype(int)) >= 0).all()  # monotonic inside the window
    assert row[np.argmin(np.abs(modality_values))] in range(120, 136)  # centre ~ mid-grey


def test_without_window_the_full_range_is_stretched() -> None:
    decoded = _ingest(make_cxr_dicom(rows=32, cols=64, pixels=_ramp(top=3000))).decoded
    assert decoded.dicom is not None and decoded.dicom.voi == "minmax"
    assert decoded.pixels.min() == 0 and decoded.pixels.max() == 255
    assert decoded.window is None


def test_monochrome1_is_inverted_so_bright_raw_becomes_dark() -> None:
    raw = np.full((32, 32), 100, dtype=np.uint16)
    raw[8:16, 8:16] = 4000  # bright in raw = low density in MONOCHROME1
    decoded = _ingest(make_cxr_dicom(rows=32, cols=32, pixels=raw, photometric="MONOCHROME1")).decoded
    assert decoded.photometric == "MONOCHROME1"
    assert decoded.pixels[10, 10] == 0
    assert decoded.pixels[0, 0] == 255


def test_eight_bit_monochrome2_is_shown_as_stored_range() -> None:
    raw = _ramp(top=255).astype(np.uint8)
    decoded = _ingest(make_cxr_dicom(rows=32, cols=64, bits=8, pixels=raw)).decoded
    assert decoded.bits == 8
    assert decoded.pixels_raw.dtype == np.uint8
    assert np.array_equal(decoded.pixels, raw)  # 0..255 min-max is the identity


def test_rgb_dicom_becomes_luma() -> None:
    decoded = _ingest(make_cxr_dicom(rows=32, cols=32, photometric="RGB", modality="CR")).decoded
    assert decoded.photometric == "RGB"
    assert decoded.pixels_raw.shape == (32, 32, 3)
    assert decoded.pixels.shape == (32, 32)
    r, g, b = (decoded.pixels_raw[..., i].astype(float) for i in range(3))
    expected = np.rint(0.299 * r + 0.587 * g + 0.114 * b)
    assert np.abs(decoded.pixels.astype(float) - expected).max() <= 1


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_lossless_compressed_decodes_equal_to_uncompressed(syntax: str) -> None:
    kwargs = {"rows": 64, "cols": 64, "window": (2000.0, 3000.0)}
    plain = _ingest(make_cxr_dicom(**kwargs)).decoded
    packed = _ingest(make_cxr_dicom(transfer_syntax=syntax, **kwargs)).decoded
    assert packed.dicom is not None and packed.dicom.transfer_syntax_uid == syntax
    assert np.array_equal(packed.pixels_raw, plain.pixels_raw)
    assert np.array_equal(packed.pixels, plain.pixels)


def test_jpeg_baseline_decodes_close_to_the_original() -> None:
    kwargs = {"rows": 64, "cols": 64, "bits": 8}
    plain = _ingest(make_cxr_dicom(**kwargs)).decoded
    lossy = _ingest(make_cxr_dicom(transfer_syntax=JPEGBaseline8Bit, **kwargs)).decoded
    diff = np.abs(lossy.pixels_raw.astype(int) - plain.pixels_raw.astype(int))
    assert diff.mean() < 3


def test_dicom_without_pixels_is_refused() -> None:
    with pytest.raises(IngestError) as exc:
        _ingest(make_cxr_dicom(with_pixels=False))
    assert exc.value.code == "dicom_no_pixels"
    assert exc.value.http_status == 422
    assert "Digital X-Ray Image Storage" in exc.value.message


def test_unsupported_transfer_syntax_names_uid_and_syntax() -> None:
    data = with_undecodable_syntax(make_cxr_dicom(rows=16, cols=16, bits=8), MPEG2MPML)
    with pytest.raises(IngestError) as exc:
        _ingest(data)
    assert exc.value.code == "unsupported_transfer_syntax"
    assert exc.value.http_status == 415
    assert "1.2.840.10008.1.2.4.100" in exc.value.message
    assert "MPEG2" in exc.value.message


@pytest.mark.parametrize("keep", [300, -2000], ids=["header-cut", "pixels-cut"])
def test_truncated_dicom_is_corrupt(keep: int) -> None:
    data = make_cxr_dicom(rows=64, cols=64)
    with pytest.raises(IngestError) as exc:
        _ingest(data[:keep])
    assert exc.value.code == "corrupt_dicom"


def test_huge_declared_frame_is_refused_before_decoding() -> None:
    data = make_cxr_dicom(
        rows=1100,
        cols=1000,
        bits=8,
        transfer_syntax=RLELossless,
        pixels=np.zeros((1100, 1000), np.uint8),
        overlay=False,
    )
    with pytest.raises(IngestError) as exc:
        _ingest(data)
    assert exc.value.code == "too_many_pixels"
    assert exc.value.details == {"width": 1000, "height": 1100, "max_pixels": MAX_PIXELS}


def test_raw_dataset_without_preamble_is_ingested() -> None:
    data = to_raw_dataset(make_cxr_dicom(rows=32, cols=32))
    result = _ingest(data)
    assert result.decoded.pixels.shape == (32, 32)
    assert result.deidentified_bytes[128:132] == b"DICM"  # stored as a proper Part 10 file


def test_multiframe_chest_xray_is_refused() -> None:
    with pytest.raises(IngestError) as exc:
        _ingest(make_cxr_dicom(rows=32, cols=32, frames=3, modality="DX"))
    assert exc.value.code == "multiframe_not_supported"
    assert "3 frames" in exc.value.message


def test_oct_volume_shows_the_central_frame() -> None:
    frames = np.stack([np.full((16, 24), 10 * k, dtype=np.uint8) for k in range(5)])
    result = _ingest(make_oct_dicom(frames=5, rows=16, cols=24, pixels=frames, transfer_syntax=RLELossless))
    decoded = result.decoded
    assert result.scope == "oct" and result.scope_warning is None
    assert decoded.frame_count == 5
    assert decoded.dicom is not None and decoded.dicom.frame_index == 2
    assert np.array_equal(decoded.pixels_raw, frames[2])


def test_oct_window_from_functional_groups_is_used() -> None:
    result = _ingest(make_oct_dicom(frames=3, window=(100.0, 50.0)))
    assert result.decoded.window == (100.0, 50.0)
    assert result.decoded.dicom is not None and result.decoded.dicom.voi == "window"


def test_single_frame_chest_xray_is_in_scope() -> None:
    for modality in ("DX", "CR"):
        result = _ingest(make_cxr_dicom(rows=16, cols=16, modality=modality))
        assert (result.scope, result.scope_warning) == ("cxr", None)
        assert result.modality == modality


def test_out_of_scope_modality_is_kept_with_a_warning() -> None:
    result = _ingest(make_cxr_dicom(rows=16, cols=16, modality="MR", body_part="BRAIN"))
    assert result.scope == "unknown"
    assert result.scope_warning == ("Modality MR is outside the model's scope (chest X-ray: CR/DX; retinal OCT: OPT/OP)")


def test_xray_of_another_body_part_is_out_of_scope() -> None:
    result = _ingest(make_cxr_dicom(rows=16, cols=16, modality="DX", body_part="HAND"))
    assert result.scope == "unknown"
    assert result.scope_warning is not None and "HAND" in result.scope_warning


def test_native_syntax_is_preserved_in_the_stored_copy() -> None:
    result = _ingest(make_cxr_dicom(rows=16, cols=16, transfer_syntax=ExplicitVRLittleEndian))
    assert result.decoded.dicom is not None
    assert result.decoded.dicom.transfer_syntax_uid == ExplicitVRLittleEndian


def test_voi_lut_sequence_is_preferred_and_scaled_by_its_own_range() -> None:
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])  # LUT Descriptor: 16 bits declared...
    item.add_new(0x00283006, "US", [4095 - v for v in range(4096)])  # ...12 used, inverting
    raw = _ramp(top=4095)
    extra = {"VOILUTSequence": Sequence([item])}
    decoded = _ingest(make_cxr_dicom(rows=32, cols=64, pixels=raw, window=(10.0, 5.0), extra=extra)).decoded
    assert decoded.dicom is not None and decoded.dicom.voi == "lut"
    assert decoded.pixels[0, 0] == 255 and decoded.pixels[0, -1] == 0


def test_invalid_window_is_a_clear_error_not_a_crash() -> None:
    with pytest.raises(IngestError) as exc:
        _ingest(make_cxr_dicom(rows=16, cols=16, window=(100.0, 0.0)))
    assert exc.value.code == "corrupt_dicom"
    assert "Window Width" in exc.value.message


def _voi_lut_item() -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])
    item.add_new(0x00283006, "US", [(v * 7) % 4096 for v in range(4096)])  # not monotonic
    return item


@pytest.mark.parametrize(
    ("photometric", "window", "rescale", "extra", "signed"),
    [
        ("MONOCHROME2", (2048.0, 4096.0), None, None, False),
        ("MONOCHROME1", (1500.0, 800.0), None, None, False),
        ("MONOCHROME2", (0.0, 1000.0), (1.0, -1024.0), None, False),
        ("MONOCHROME2", (-100.0, 900.5), (0.5, 30.0), None, True),
        ("MONOCHROME2", (10.0, 5.0), None, {"VOILUTSequence": Sequence([_voi_lut_item()])}, False),
    ],
)
def test_lookup_table_mapping_of_large_images_equals_the_pixelwise_pipeline(
    photometric, window, rescale, extra, signed
) -> None:
    import io

    import pydicom

    from clinical.ingest.dicom_pixels import _LUT_MAX_ENTRIES, _grayscale_display, _grayscale_pixelwise, frame_view

    rng = np.random.default_rng(7)
    raw = rng.integers(0, 4096, size=(300, 320)).astype(np.uint16)  # 96,000 pixels: the table path
    assert raw.size > _LUT_MAX_ENTRIES
    data = make_cxr_dicom(rows=300, cols=320, pixels=raw, photometric=photometric, window=window,
                          rescale=rescale, extra=extra)
    ds = pydicom.dcmread(io.BytesIO(data))
    pixels = ds.pixel_array
    if signed:  # the same values read as signed 16-bit (PixelRepresentation 1)
        ds.PixelRepresentation = 1
        pixels = (pixels.astype(np.int32) - 2048).astype(np.int16)
    view = frame_view(ds, 0)
    table, voi_a = _grayscale_display(pixels, view)
    direct, voi_b = _grayscale_pixelwise(pixels, view)
    assert voi_a == voi_b and table.dtype == direct.dtype == np.uint8
    assert np.array_equal(table, direct)
