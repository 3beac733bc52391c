"""Model registry and ConvStemViT behaviour (tiny configs: seconds on 2 cores)."""

from __future__ import annotations

import pytest
import torch

from mlcore.ml.models import DEFAULT_MODEL, ConvStemViT, build_model, list_models


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_lists_required_variants() -> None:
    names = list_models()
    for required in ("seed-vit-64", "vit-h16-224", "vit-s16-224", "vit-t-256", "vit-tiny-test", "densenet121"):
        assert required in names
    assert DEFAULT_MODEL in names
    assert names == sorted(names)


def test_unknown_model_name_lists_registered() -> None:
    with pytest.raises(KeyError, match=r"unknown model 'no-such-net'.*vit-tiny-test"):
        build_model("no-such-net")


@pytest.mark.parametrize("name", list_models())
def test_output_shape_and_cfg(name: str) -> None:
    model = build_model(name).eval()
    cfg = model.default_cfg
    assert {"name", "img_size", "in_chans", "num_classes"} <= set(cfg)
    assert cfg["name"] == name
    x = torch.randn(2, cfg["in_chans"], cfg["img_size"], cfg["img_size"])
    with torch.inference_mode():
        tokens = model.forward_features(x)
        logits = model.forward_head(tokens)
        pre = model.forward_head(tokens, pre_logits=True)
    assert logits.shape == (2, cfg["num_classes"]) == (2, 9)
    assert tokens.ndim == 3 and tokens.shape[0] == 2
    assert pre.shape == (2, tokens.shape[-1])
    assert isinstance(model.cam_layer, torch.nn.Module)
    assert model.is_vit == name.startswith(("vit", "seed"))


def test_seed_reproduces_original_network() -> None:
    model = build_model("seed-vit-64")
    assert isinstance(model, ConvStemViT)
    assert sum(p.numel() for p in model.parameters()) == 5_014_089
    assert model.grid_size == (16, 16)
    assert model.pos_embedding.shape == (1, 257, 64)
    attn = model.blocks[0].attn
    assert attn.to_qkv.weight.shape == (3072, 64) and attn.to_qkv.bias is None
    assert len(model.blocks) == 16 and model.head.out_features == 9
    assert model.cam_layer is model.stem.blocks[-1]


def test_224_variants_keep_tokens_small_with_early_stride() -> None:
    for name in ("vit-h16-224", "vit-s16-224", "vit-t-256"):
        model = build_model(name)
        gh, gw = model.grid_size
        assert gh * gw <= 256
        assert model.stem.strides[0] == 2  # no full-resolution stride-1 conv


def test_hybrid_stem_refines_with_residual_steps_and_the_seed_stays_plain() -> None:
    hybrid = build_model("vit-h16-224")
    residual = [b.residual for b in hybrid.stem.blocks]
    assert residual == [s == 1 for s in hybrid.stem.strides] and sum(residual) == 3
    block = hybrid.stem.blocks[2].eval()
    torch.nn.init.zeros_(block.bn.weight)  # the conv branch switched off: the block is relu(x)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(block(x), torch.relu(x))
    assert not any(b.residual for b in build_model("seed-vit-64").stem.blocks)  # reproduced exactly


def test_forward_equals_head_of_features_and_rejects_wrong_size() -> None:
    model = build_model("vit-tiny-test").eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(model(x), model.forward_head(model.forward_features(x)))
    with pytest.raises(ValueError, match=r"expects input \(B, 1, 32, 32\); got \(3, 1, 64, 64\)"):
        model(torch.randn(3, 1, 64, 64))


def test_overrides_and_rebuild_from_default_cfg() -> None:
    model = build_model("vit-tiny-test", num_classes=4, img_size=48)
    assert model.default_cfg["num_classes"] == 4 and model.grid_size == (12, 12)
    clone = build_model(**model.default_cfg)
    clone.load_state_dict(model.state_dict())  # same architecture, strict


def test_attention_capture_off_by_default_and_same_output() -> None:
    model = build_model("vit-tiny-test").eval()
    assert model.attention_capture is False
    x = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        fast = model(x)
        assert all(a.last_attn is None for a in model.attention_modules())
        assert model.set_attention_capture(True) is False
        slow = model(x)
    maps = model.captured_attentions()
    assert len(maps) == 2 and maps[0].shape == (2, 2, 65, 65)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 65), atol=1e-5)
    assert torch.allclose(fast, slow, atol=1e-5)
    model.set_attention_capture(False)
    assert all(a.last_attn is None for a in model.attention_modules())


def test_tiny_variant_overfits_one_batch() -> None:
    model = build_model("vit-tiny-test").train()
    x = torch.randn(8, 1, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    model.eval()
    with torch.inference_mode():
        assert (model(x).argmax(1) == y).float().mean().item() == 1.0
