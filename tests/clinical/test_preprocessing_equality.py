"""One preprocessing path: the same pixels give the same model input and probabilities
whatever the file format, and the training decoder agrees with the serving decoder.

DESIGN.md section 6; issue: an 8-bit DICOM was min-max stretched before the model saw it,
so the same film as PNG and as DICOM got different top classes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from clinical.ingest import ingest_bytes, render_display
from mlcore.ml.bundle import ModelBundle
from mlcore.ml.data.imaging import decode_gray
from mlcore.ml.models import build_model
from mlcore.ml.predictor import Predictor
from mlcore.ml.transforms import PreprocessConfig, model_input
from tests.clinical.dicom_factory import make_cxr_dicom

KEY = b"test-pseudonym-key-0123456789abcdef"
LIMITS = {"max_bytes": 50_000_000, "max_pixels": 10_000_000}


def _film(rows: int = 96, cols: int = 80) -> np.ndarray:
    """A chest-like 8-bit picture that does not use the full 0..255 range (as many exported
    films do): exactly the case a per-image min-max stretch changes."""
    y, x = np.mgrid[0:rows, 0:cols]
    lungs = 40 + 90 * np.exp(-(((x - cols * 0.3) / 14) ** 2 + ((y - rows * 0.5) / 30) ** 2))
    lungs += 90 * np.exp(-(((x - cols * 0.7) / 14) ** 2 + ((y - rows * 0.5) / 30) ** 2))
    rng = np.random.default_rng(3)
    return np.clip(lungs + rng.normal(0, 4, lungs.shape), 20, 230).astype(np.uint8)


def _png(arr: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **save)
    return buf.getvalue()


def _served_pixels(data: bytes, name: str) -> np.ndarray:
    """What the inference worker feeds the model: the display pixels rendered from the
    stored copy of an accepted upload."""
    result = ingest_bytes(data, filename=name, pseudonym_key=KEY, **LIMITS)
    _, pixels = render_display(result.stored_bytes, format=result.format,
                               max_pixels=LIMITS["max_pixels"])
    return pixels


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    model = build_model("vit-tiny-test")
    bundle = ModelBundle(model_name="vit-tiny-test", state_dict=model.state_dict(),
                         preprocess=PreprocessConfig(image_size=32, mean=0.45, std=0.25,
                                                     intensity="equalize"))
    return Predictor(bundle, version="eq", model_uri="local")


def test_png_8bit_dicom_and_windowed_16bit_dicom_give_identical_model_inputs(predictor) -> None:
    film = _film()
    as_png = _served_pixels(_png(film), "film.png")
    as_dicom8 = _served_pixels(make_cxr_dicom(bits=8, pixels=film, overlay=False), "film8.dcm")
    # 16-bit stored values v * 257 with a linear window that maps 0..65535 back onto 0..255:
    # the header's window is what the values mean, and it reproduces the 8-bit picture.
    wide = film.astype(np.uint16) * 257
    as_dicom16 = _served_pixels(
        make_cxr_dicom(bits=16, pixels=wide, overlay=False, window=(32768, 65536),
                       extra={"BitsStored": 16, "HighBit": 15}), "film16.dcm")
    np.testing.assert_array_equal(as_png, film)  # an 8-bit PNG is taken as stored
    cfg = predictor.bundle.preprocess
    reference, _ = model_input(as_png, cfg)
    for other in (as_dicom8, as_dicom16):
        x, _ = model_input(other, cfg)
        assert float((x - reference).abs().max()) == 0.0
    probs = [predictor.predict([p], explain=False, scopes=["cxr"])[0].probabilities
             for p in (as_png, as_dicom8, as_dicom16)]
    for p in probs[1:]:
        assert p.keys() == probs[0].keys()
        assert max(abs(p[k] - probs[0][k]) for k in p) <= 1e-6


def test_eight_bit_dicom_without_window_is_taken_as_stored_not_stretched() -> None:
    film = _film()
    pixels = _served_pixels(make_cxr_dicom(bits=8, pixels=film, overlay=False), "film.dcm")
    assert int(pixels.min()) == int(film.min()) > 0 and int(pixels.max()) == int(film.max()) < 255
    monochrome1 = _served_pixels(
        make_cxr_dicom(bits=8, pixels=film, overlay=False, photometric="MONOCHROME1"), "m1.dcm")
    np.testing.assert_array_equal(monochrome1, 255 - film)  # inverted, still not stretched


def _rgba(film: np.ndarray) -> bytes:
    rgba = np.dstack([film, np.roll(film, 3, axis=1), film // 2, np.full_like(film, 200)])
    return _png(rgba)


def _palette(film: np.ndarray) -> bytes:
    return _png(np.asarray(Image.fromarray(np.dstack([film] * 3)).convert("P")))


def _exif_rotated(film: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _png(film, exif=exif.tobytes())


def _sixteen_bit(film: np.ndarray) -> bytes:
    return _png((film.astype(np.uint16) * 16 + 7).astype(">u2").astype(np.uint16))


@pytest.mark.parametrize("make", [_rgba, _palette, _exif_rotated, _sixteen_bit],
                         ids=["rgba", "palette", "exif-rotated", "16-bit"])
def test_training_decoder_and_serving_decoder_agree(make) -> None:
    data = make(_film())
    training = decode_gray(data)  # what the dataset store keeps and training reads
    serving = _served_pixels(data, "upload.png")
    assert training.dtype == serving.dtype == np.uint8
    np.testing.assert_array_equal(training, serving)


def test_exif_orientation_is_applied_to_png_too() -> None:
    film = _film(rows=96, cols=80)
    assert _served_pixels(_exif_rotated(film), "rotated.png").shape == (80, 96)
