"""DenseNet-121 baseline (the CheXNet architecture) with the same interface as ConvStemViT.

Kept as the reference point for accuracy and latency: it is what most chest X-ray papers
compare against. Built from MONAI so there is no torchvision dependency; random weights only
(nothing is ever downloaded).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class DenseNet121Classifier(nn.Module):
    """MONAI DenseNet121 split into ``forward_features`` / ``forward_head``.

    ``forward_features`` returns the globally pooled features as a single token (b 1 1024), so
    code written for ViT tokens (``tokens[:, 0]``) works unchanged.
    """

    is_vit = False

    def __init__(self, *, name: str = "densenet121", img_size: int = 224, in_chans: int = 1,
                 num_classes: int = 9) -> None:
        super().__init__()
        from monai.networks.nets import DenseNet121  # heavy import, only when built

        self.default_cfg: dict[str, Any] = {
            "name": name, "img_size": int(img_size), "in_chans": int(in_chans),
            "num_classes": int(num_classes),
        }
        self.img_size = int(img_size)
        self.in_chans = int(in_chans)
        self.num_classes = int(num_classes)
        net = DenseNet121(spatial_dims=2, in_channels=in_chans, out_channels=num_classes,
                          pretrained=False)
        self.features = net.features  # conv0 ... denseblock4, norm5
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head = net.class_layers.out  # Linear(1024, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """Layer Grad-CAM attributes to: the output of the last dense block (after norm5)."""
        return self.features

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"densenet121 expects input (B, {self.in_chans}, H, W); "
                             f"got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(b c H W) -> pooled features as one token (b 1 1024)."""
        self._check_input(x)
        return self.pool(self.features(x)).unsqueeze(1)

    def forward_head(self, tokens: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """(b 1 1024) -> logits (b num_classes), or the pooled features (b 1024)."""
        feats = tokens[:, 0]
        return feats if pre_logits else self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
