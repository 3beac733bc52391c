"""Preprocessing and augmentation: geometry, dtypes, statistics, flip policy, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcore.ml.transforms import (
    LetterboxBox,
    PreprocessConfig,
    TrainAugment,
    compute_intensity_stats,
    letterbox,
    letterbox_with_box,
    preprocess,
    preprocess_batch,
    to_grayscale_float,
    to_letterboxed_tensor,
    unletterbox,
)


def test_letterbox_preserves_aspect_and_centres() -> None:
    img = torch.ones(1, 100, 50)  # tall: H=100, W=50
    out, box = letterbox_with_box(img, 64)
    assert out.shape == (1, 64, 64)
    assert box == LetterboxBox(top=0, left=16, height=64, width=32)
    content = out[0] > 0.5
    rows, cols = np.nonzero(content.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 63, 16, 47)
    assert out[0, :, :16].abs().max() == 0 and out[0, :, 48:].abs().max() == 0


def test_letterbox_batch_and_wide_images() -> None:
    out, box = letterbox_with_box(torch.ones(3, 1, 30, 120), 64)
    assert out.shape == (3, 1, 64, 64)
    assert box == LetterboxBox(top=24, left=0, height=16, width=64)
    assert letterbox(torch.ones(1, 64, 64), 64).shape == (1, 64, 64)
    with pytest.raises(ValueError, match=r"\(1, H, W\) or \(B, 1, H, W\), got \(3, 10, 10\)"):
        letterbox(torch.ones(3, 10, 10), 8)


def test_unletterbox_maps_back_to_original_geometry() -> None:
    _, box = letterbox_with_box(torch.ones(1, 100, 50), 64)
    heat = np.zeros((64, 64), np.float32)
    heat[:, 16:32] = 1.0  # left half of the content
    back = unletterbox(heat, box, (100, 50))
    assert back.shape == (100, 50)
    assert back[:, :20].mean() > 0.95 and back[:, 30:].mean() < 0.05


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        (np.full((4, 5), 255, np.uint8), 1.0),
        (np.full((4, 5), 4095, np.uint16), 1.0),  # 12-bit detector data
        (np.full((4, 5), 65535, np.uint16), 1.0),
        (np.full((4, 5, 3), [255, 0, 0], np.uint8), 0.299),
        (np.full((4, 5, 4), [0, 255, 0, 7], np.uint8), 0.587),
        (np.full((4, 5), 0.25, np.float64), 0.25),
    ],
)
def test_to_grayscale_float_accepts(img: np.ndarray, expected: float) -> None:
    out = to_grayscale_float(img)
    assert out.dtype == np.float32 and out.shape == (4, 5)
    assert np.allclose(out, expected, atol=1e-6)


def test_to_grayscale_float_rescales_out_of_range_float() -> None:
    out = to_grayscale_float(np.array([[-1000.0, 0.0], [500.0, 1000.0]]))
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize(
    ("img", "pattern"),
    [
        (np.zeros((4, 5, 2), np.uint8), r"shape \(4, 5, 2\), dtype uint8"),
        (np.zeros((2, 4, 5, 3), np.uint8), r"shape \(2, 4, 5, 3\)"),
        (np.zeros((4, 5), np.int32), r"dtype int32"),
        (np.zeros((4, 5), bool), r"dtype bool"),
    ],
)
def test_to_grayscale_float_rejects(img: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        to_grayscale_float(img)


def test_to_grayscale_float_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        to_grayscale_float(np.array([[0.0, np.nan]]))


def test_preprocess_normalises_with_config() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 30), dtype=np.uint8) for _ in range(4)]
    mean, std = compute_intensity_stats(images, 32)
    stacked = torch.stack([to_letterboxed_tensor(im, 32) for im in images])
    assert mean == pytest.approx(stacked.double().mean().item(), rel=1e-6)
    assert std == pytest.approx(stacked.double().std(unbiased=False).item(), rel=1e-6)
    cfg = PreprocessConfig(image_size=32, mean=mean, std=std)
    batch = preprocess_batch(images, cfg)
    assert batch.shape == (4, 1, 32, 32) and batch.dtype == torch.float32
    assert batch.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert batch.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert preprocess(images[0], cfg).shape == (1, 32, 32)


def test_preprocess_config_round_trip_and_validation() -> None:
    cfg = PreprocessConfig(image_size=224, mean=0.5, std=0.25)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="missing"):
        PreprocessConfig.from_dict({"image_size": 224})
    with pytest.raises(ValueError, match="std"):
        PreprocessConfig(image_size=224, mean=0.5, std=0.0)


def _left_heavy() -> torch.Tensor:
    img = torch.zeros(1, 64, 64)
    img[:, 8:56, 6:26] = 0.9  # bright block on the image's left
    return img


def _left_minus_right(x: torch.Tensor) -> float:
    return float(x[..., :32].sum() - x[..., 32:].sum())


def test_augment_never_flips_chest_xray() -> None:
    aug = TrainAugment(generator=torch.Generator().manual_seed(1))
    img = _left_heavy()
    for key in ("lung-covid", "lung-normal", "cxr"):
        for _ in range(40):
            out = aug(img, key)
            assert out.shape == (1, 64, 64)
            assert out.min() >= 0 and out.max() <= 1
            assert _left_minus_right(out) > 0


def test_augment_may_flip_oct_but_not_when_disabled() -> None:
    img = _left_heavy()
    aug = TrainAugment(generator=torch.Generator().manual_seed(2))
    sides = {_left_minus_right(aug(img, modality="oct")) > 0 for _ in range(40)}
    assert sides == {True, False}
    off = TrainAugment(hflip_oct=False, generator=torch.Generator().manual_seed(2))
    assert all(_left_minus_right(off(img, "lung-oct-cnv")) > 0 for _ in range(40))


def test_augment_is_deterministic_with_seeded_generator() -> None:
    img = _left_heavy()
    a = [TrainAugment()(img, "oct", generator=torch.Generator().manual_seed(7)) for _ in "ab"]
    assert torch.equal(a[0], a[1])
    aug = TrainAugment(generator=torch.Generator().manual_seed(7))
    first, second = aug(img, "cxr"), aug(img, "cxr")
    assert not torch.equal(first, second)


def test_augment_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(1, S, S\)"):
        TrainAugment()(torch.zeros(3, 8, 8), "cxr")
    with pytest.raises(ValueError, match="unknown class key 'lung-xyz'"):
        TrainAugment()(torch.zeros(1, 8, 8), "lung-xyz")


def test_equalisation_removes_global_contrast_brightness_and_gamma() -> None:
    from mlcore.ml.transforms import equalize_histogram

    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.integers(30, 200, (1, 40, 40)).astype(np.float32) / 255.0)
    box = (4, 0, 32, 40)
    padded = torch.zeros_like(base)
    padded[:, 4:36] = base[:, 4:36]
    out = equalize_histogram(padded, box)
    assert float(out[:, :4].abs().max()) == 0.0 and float(out[:, 36:].abs().max()) == 0.0
    content = out[0, 4:36]
    assert float(content.min()) == 0.0 and float(content.max()) == 1.0
    # strictly increasing changes of the 8-bit levels (brightness, contrast) change nothing
    levels = (padded * 255).round()
    for change in (lambda v: v + 40, lambda v: ((v - 30) * 1.25).round()):
        changed = torch.where(levels > 0, change(levels), levels) / 255.0
        assert torch.equal(equalize_histogram(changed, box), out)


def test_near_blank_images_are_not_stretched_into_noise() -> None:
    from mlcore.ml.transforms import MIN_EQUALIZE_LEVELS, equalize_histogram

    flat = torch.full((1, 16, 16), 0.5)
    flat[0, 0, :3] += (MIN_EQUALIZE_LEVELS - 2) / 255.0
    assert torch.equal(equalize_histogram(flat), flat)


def test_model_input_is_the_one_path_and_old_configs_read_as_no_standardisation() -> None:
    from mlcore.ml.transforms import model_input

    cfg = PreprocessConfig.from_dict({"image_size": 32, "mean": 0.5, "std": 0.25})
    assert cfg.intensity == "none"
    img = np.random.default_rng(2).integers(0, 255, (50, 40), dtype=np.uint8)
    x, box = model_input(img, cfg)
    assert torch.equal(x, preprocess_batch([img], cfg)[0]) and box.height == 32
    with pytest.raises(ValueError, match="intensity must be one of"):
        PreprocessConfig(image_size=32, mean=0.5, std=0.2, intensity="clahe")
