"""Explanations on the tiny ViT: shapes, ranges, rollout maths and geometry, PNG output."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mlcore.ml.explain import (
    attention_rollout,
    grad_cam,
    heatmap_png,
    integrated_gradients,
    predict_with_rollout,
    render_overlay_png,
    rollout_from_attentions,
    rollout_maps,
)
from mlcore.ml.models import build_model


@pytest.fixture
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("vit-tiny-test").eval()


def _check_maps(maps: np.ndarray, shape: tuple[int, ...]) -> None:
    assert maps.shape == shape and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.isclose(maps.reshape(shape[0], -1).max(axis=1), 1.0).all()


def test_rollout_of_one_hot_attention_by_hand() -> None:
    attn = torch.zeros(1, 1, 3, 3)
    attn[0, 0, :, 1] = 1.0  # every token (CLS included) attends to token 1
    # (A + I) / 2: CLS row = [0.5, 0.5, 0]; over the patches -> [0.5, 0]
    assert torch.allclose(rollout_from_attentions([attn]), torch.tensor([[0.5, 0.0]]))
    # two blocks: R = A' @ A'; A' row 1 = [0, 1, 0] so CLS row = [0.25, 0.75, 0]
    assert torch.allclose(rollout_from_attentions([attn, attn]), torch.tensor([[0.75, 0.0]]))


def test_rollout_matches_reference_loop() -> None:
    g = torch.Generator().manual_seed(0)
    attns = [torch.rand(2, 3, 5, 5, generator=g).softmax(-1) for _ in range(3)]
    ref = []
    for b in range(2):
        r = np.eye(5)
        for a in attns:
            m = a[b].double().mean(0).numpy() + np.eye(5)
            r = (m / m.sum(1, keepdims=True)) @ r
        ref.append(r[0, 1:])
    assert np.allclose(rollout_from_attentions(attns).numpy(), np.array(ref), atol=1e-6)
    assert rollout_from_attentions(attns, discard_ratio=0.5, head_fusion="max").shape == (2, 4)
    with pytest.raises(ValueError, match="head_fusion"):
        rollout_from_attentions(attns, head_fusion="median")  # type: ignore[arg-type]


def test_rollout_map_puts_attended_token_in_the_right_place(tiny: torch.nn.Module) -> None:
    t = 1 + 64  # 8x8 grid of 4x4-pixel cells
    attn = torch.zeros(1, 1, t, t)
    attn[0, 0, :, 1 + 2 * 8 + 5] = 1.0  # grid row 2, col 5
    maps = rollout_maps(tiny, [attn, attn], (32, 32))
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert 8 <= peak[0] < 12 and 20 <= peak[1] < 24
    assert maps[0, 8:12, 20:24].min() > 0.5 and maps[0, :, :12].max() < 0.05


def _force_cls_to_attend(model: torch.nn.Module, token: int) -> None:
    """Weights that make the CLS query match only ``token``'s key, in head 0 of every block.

    Stem output is cut off (to_tokens = 0) and the residual branches write nothing (to_out and
    the MLP output = 0), so the residual stream is the position embeddings throughout."""
    d, inner = 32, 2 * 16
    with torch.no_grad():
        model.to_tokens.weight.zero_()
        model.to_tokens.bias.zero_()
        pos = torch.zeros_like(model.pos_embedding)
        pos[0, :, 2], pos[0, :, 3] = 5.0, -5.0  # every patch token: neutral direction
        pos[0, 0, :4] = torch.tensor([5.0, 0.0, -5.0, 0.0])  # CLS: dim 0
        pos[0, token, :4] = torch.tensor([0.0, 5.0, 0.0, -5.0])  # target: dim 1
        model.pos_embedding.copy_(pos)
        model.cls_token.zero_()
        for blk in model.blocks:
            w = torch.zeros(3 * inner, d)
            w[0, 0] = 3.0  # head 0 query <- dim 0
            w[inner, 1] = 3.0  # head 0 key <- dim 1
            blk.attn.to_qkv.weight.copy_(w)
            blk.attn.to_out[0].weight.zero_()
            blk.ff.net[4].weight.zero_()


def test_rollout_highlights_region_a_real_model_attends_to(tiny: torch.nn.Module) -> None:
    token = 1 + 5 * 8 + 1  # grid row 5, col 1 -> pixels rows 20..23, cols 4..7
    _force_cls_to_attend(tiny, token)
    maps = attention_rollout(tiny, torch.randn(2, 1, 32, 32))
    _check_maps(maps, (2, 32, 32))
    attn0 = tiny.blocks[0].attn
    assert attn0.capture is False and attn0.last_attn is None  # flag restored
    for m in maps:
        peak = np.unravel_index(m.argmax(), m.shape)
        assert 20 <= peak[0] < 24 and 4 <= peak[1] < 8
        assert m[20:24, 4:8].mean() > 0.6 and m[:12].max() < 0.1


def test_predict_with_rollout_matches_plain_forward(tiny: torch.nn.Module) -> None:
    x = torch.randn(3, 1, 32, 32)
    tiny.set_attention_capture(True)  # a previous state of "on" is kept
    logits, maps = predict_with_rollout(tiny, x)
    assert tiny.attention_capture is True
    tiny.set_attention_capture(False)
    with torch.inference_mode():
        assert torch.allclose(logits, tiny(x), atol=1e-5)
    _check_maps(maps, (3, 32, 32))


def test_rollout_refuses_densenet() -> None:
    model = build_model("densenet121", img_size=64).eval()
    with pytest.raises(TypeError, match="grad_cam"):
        attention_rollout(model, torch.randn(1, 1, 64, 64))


def test_integrated_gradients_and_grad_cam_shapes(tiny: torch.nn.Module) -> None:
    x = torch.randn(2, 1, 32, 32)
    tiny.train()
    ig = integrated_gradients(tiny, x, n_steps=8)
    _check_maps(ig, (2, 32, 32))
    assert tiny.training  # mode restored
    tiny.eval()
    with torch.inference_mode():  # callable from an inference-mode caller
        cam = grad_cam(tiny, x, target=3)
        ig_zero = integrated_gradients(tiny, x, target=[1, 2], n_steps=4, baseline="zeros")
    assert cam.shape == (2, 32, 32) and cam.min() >= 0 and cam.max() <= 1
    _check_maps(ig_zero, (2, 32, 32))
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(tiny, x, target=9)


def test_integrated_gradients_ignores_pixels_the_model_cannot_see(
        tiny: torch.nn.Module) -> None:
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():  # first stem conv reads nothing: all-constant input to the network
        tiny.stem.blocks[0].conv.weight.zero_()
    ig = integrated_gradients(tiny, x, n_steps=4)
    assert ig.max() == 0.0  # no NaN from normalising an all-zero map


def test_overlay_and_heatmap_png_decode_to_image_size() -> None:
    image = np.tile(np.arange(120, dtype=np.uint8), (80, 1))  # H=80, W=120
    heat = np.zeros((32, 32), np.float32)
    heat[8:16, 8:16] = 1.0
    overlay = Image.open(io.BytesIO(render_overlay_png(image, heat)))
    assert overlay.size == (120, 80) and overlay.mode == "RGB"
    arr = np.asarray(overlay).astype(int)
    assert abs(arr[79, 119] - 119).max() <= 1  # cold region: the radiograph, unchanged
    assert arr[30, 40, 0] > arr[30, 40, 2]  # hot region: red-ish
    float_img = Image.open(io.BytesIO(render_overlay_png(image / 255.0, heat, alpha=0.0)))
    assert np.array_equal(np.asarray(float_img)[..., 0], image)
    layer = Image.open(io.BytesIO(heatmap_png(heat, size=(120, 80))))
    assert layer.size == (120, 80) and layer.mode == "RGBA"
    alpha = np.asarray(layer)[..., 3]
    assert alpha[79, 119] == 0 and alpha[30, 40] == 255
    assert Image.open(io.BytesIO(heatmap_png(heat))).size == (32, 32)
    with pytest.raises(ValueError, match="colormap"):
        heatmap_png(heat, colormap="rainbow")
    with pytest.raises(ValueError, match="2-D"):
        render_overlay_png(image, np.zeros(5))
