"""ConvStemViT: a convolutional stem feeding a pre-LayerNorm Vision Transformer.

Written in the style of lucidrains' ``vit_pytorch/vit.py``: small modules, keyword-only
constructors, einops strings as shape documentation. Why a conv stem instead of a patchify
layer: on a few thousand radiographs a ViT with a linear patch embedding trains poorly; a stack
of 3x3 conv-BN-ReLU blocks gives the transformer local edges and textures to start from
(Xiao et al. 2021, "Early convolutions help transformers see better"), and the stem's strides
decide how many tokens the (quadratic) attention has to deal with.

Shape letters used below: b batch, c channels, h/w spatial, n tokens, d model width,
heads attention heads, k head width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

Activation = Literal["relu", "gelu"]


def _activation(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU()  # never inplace: captum hooks need the pre-activation tensors intact
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}; accepted: 'relu', 'gelu'")


class ConvBNReLU(nn.Module):
    """3x3 conv -> BatchNorm -> ReLU; ``stride`` 2 halves the map (ceil(H/2)).

    ``residual`` (stride 1, same width only): ``relu(x + bn(conv(x)))``, a ResNet basic
    step -- a refinement block that starts out close to the identity, so stacking several
    does not slow the early epochs down.
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1,
                 bias: bool = False, residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                              padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        self.stride = stride
        self.residual = bool(residual and stride == 1 and in_channels == out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b c h w) -> (b c' h' w')
        y = self.bn(self.conv(x))
        return self.act(x + y if self.residual else y)


class ConvStem(nn.Module):
    """Stack of ConvBNReLU blocks; ``blocks[-1]`` is the layer Grad-CAM looks at."""

    def __init__(self, *, in_channels: int, channels: Sequence[int], strides: Sequence[int],
                 bias: bool = False, residual: bool = False) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f"stem needs one stride per block, got channels={list(channels)} "
                f"strides={list(strides)}"
            )
        widths = [in_channels, *channels]
        self.blocks = nn.Sequential(*[
            ConvBNReLU(in_channels=cin, out_channels=cout, stride=s, bias=bias, residual=residual)
            for cin, cout, s in zip(widths[:-1], widths[1:], strides, strict=True)
        ])
        self.strides = tuple(int(s) for s in strides)
        self.out_channels = int(channels[-1])

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Feature-map size for an input of ``height x width`` (3x3, pad 1: ceil(x / stride))."""
        for s in self.strides:
            height, width = math.ceil(height / s), math.ceil(width / s)
        return height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b c h w) -> (b c' h' w')
        return self.blocks(x)


class FeedForward(nn.Module):
    """Pre-norm MLP: LayerNorm -> Linear -> act -> Linear."""

    def __init__(self, *, dim: int, hidden_dim: int, activation: Activation = "gelu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            _activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b n d) -> (b n d)
        return self.net(x)


class Attention(nn.Module):
    """Pre-norm multi-head self-attention.

    With ``capture`` off (the default) it runs ``F.scaled_dot_product_attention`` (fused, no
    (n x n) tensor kept). With ``capture`` on it computes the softmax explicitly and keeps the
    probabilities in ``last_attn`` (b heads n n, detached) for attention rollout.
    """

    def __init__(self, *, dim: int, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.dropout = dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.capture = False
        self.last_attn: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b n d) -> (b n d)
        x = self.norm(x)
        q, k, v = rearrange(self.to_qkv(x), "b n (three h k) -> three b h n k",
                            three=3, h=self.heads)
        p = self.dropout if self.training else 0.0
        if self.capture:
            dots = torch.einsum("bhik,bhjk->bhij", q, k) * self.scale
            attn = dots.softmax(dim=-1)
            self.last_attn = attn.detach()
            out = torch.einsum("bhij,bhjk->bhik", F.dropout(attn, p), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.to_out(rearrange(out, "b h n k -> b n (h k)"))


class Block(nn.Module):
    """Transformer block with pre-LayerNorm residual branches (norms live in the branches)."""

    def __init__(self, *, dim: int, heads: int, dim_head: int, mlp_dim: int,
                 activation: Activation = "gelu", dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = Attention(dim=dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff = FeedForward(dim=dim, hidden_dim=mlp_dim, activation=activation,
                              dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b n d) -> (b n d)
        x = x + self.attn(x)
        return x + self.ff(x)


class ConvStemViT(nn.Module):
    """Conv stem -> tokens -> [CLS] + position embeddings -> pre-LN blocks -> LN -> head.

    Every constructor argument ends up in ``default_cfg`` so ``build_model(**cfg)`` (or
    ``ConvStemViT(**cfg minus name)``) rebuilds the same architecture from a checkpoint.
    """

    is_vit = True

    def __init__(self, *, name: str = "convstem-vit", img_size: int, in_chans: int = 1,
                 num_classes: int = 9, stem_channels: Sequence[int],
                 stem_strides: Sequence[int], stem_bias: bool = False,
                 stem_residual: bool = False, dim: int, depth: int,
                 heads: int, dim_head: int = 64, mlp_dim: int,
                 mlp_activation: Activation = "gelu", dropout: float = 0.0,
                 emb_dropout: float = 0.0) -> None:
        super().__init__()
        self.default_cfg: dict[str, Any] = {
            "name": name, "img_size": int(img_size), "in_chans": int(in_chans),
            "num_classes": int(num_classes), "stem_channels": [int(c) for c in stem_channels],
            "stem_strides": [int(s) for s in stem_strides], "stem_bias": bool(stem_bias),
            "stem_residual": bool(stem_residual),
            "dim": dim, "depth": depth, "heads": heads, "dim_head": dim_head,
            "mlp_dim": mlp_dim, "mlp_activation": mlp_activation, "dropout": dropout,
            "emb_dropout": emb_dropout,
        }
        self.img_size = int(img_size)
        self.in_chans = int(in_chans)
        self.num_classes = int(num_classes)
        self.stem = ConvStem(in_channels=in_chans, channels=stem_channels,
                             strides=stem_strides, bias=stem_bias, residual=stem_residual)
        self.grid_size = self.stem.output_size(self.img_size, self.img_size)
        num_tokens = self.grid_size[0] * self.grid_size[1]
        self.to_tokens = nn.Linear(self.stem.out_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.blocks = nn.ModuleList([
            Block(dim=dim, heads=heads, dim_head=dim_head, mlp_dim=mlp_dim,
                  activation=mlp_activation, dropout=dropout)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm-style: small truncated-normal embeddings and linears train more stably on
        # small data sets than PyTorch's default fan-in uniform.
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- attention capture -------------------------------------------------------------
    def attention_modules(self) -> list[Attention]:
        return [blk.attn for blk in self.blocks]

    def set_attention_capture(self, enabled: bool) -> bool:
        """Switch attention-probability capture on/off; returns the previous state.

        Off (default) the fused SDPA kernel runs and nothing is stored. On, every block
        keeps ``attn.last_attn`` (b heads n n) of the latest forward.
        """
        previous = self.attention_capture
        for attn in self.attention_modules():
            attn.capture = bool(enabled)
            if not enabled:
                attn.last_attn = None
        return previous

    @property
    def attention_capture(self) -> bool:
        return any(a.capture for a in self.attention_modules())

    def captured_attentions(self) -> list[torch.Tensor]:
        """Attention probabilities of the last forward, one (b heads n n) tensor per block."""
        maps = [a.last_attn for a in self.attention_modules()]
        if any(m is None for m in maps):
            raise RuntimeError("no attention captured: call set_attention_capture(True) and "
                               "run a forward pass first")
        return maps  # type: ignore[return-value]

    @property
    def cam_layer(self) -> nn.Module:
        """Layer Grad-CAM attributes to: the last conv-BN-ReLU block of the stem."""
        return self.stem.blocks[-1]

    # -- forward -----------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{self.default_cfg['name']} expects input (B, {expected[0]}, {expected[1]}, "
                f"{expected[2]}); got {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(b c H W) -> tokens (b 1+n d) after the final LayerNorm; token 0 is CLS."""
        self._check_input(x)
        fmap = self.stem(x)
        tokens = self.to_tokens(rearrange(fmap, "b c h w -> b (h w) c"))
        cls = repeat(self.cls_token, "1 1 d -> b 1 d", b=tokens.shape[0])
        x = self.emb_dropout(torch.cat([cls, tokens], dim=1) + self.pos_embedding)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """(b 1+n d) -> logits (b num_classes), or the CLS embedding (b d) if ``pre_logits``."""
        cls = tokens[:, 0]
        return cls if pre_logits else self.head(cls)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
