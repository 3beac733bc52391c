"""Model variants by name.

    model = build_model(DEFAULT_MODEL)  # random weights; nothing is ever downloaded
    size = model.default_cfg["img_size"]
    logits = model(torch.zeros(1, 1, size, size))  # (1, 9), CLASS_KEYS order

Every model has ``default_cfg`` (name, img_size, in_chans, num_classes, ...), ``is_vit``,
``cam_layer`` (the layer Grad-CAM uses), ``forward_features`` / ``forward_head``. ViTs also
have ``stem`` (``stem.blocks[-1]`` == ``cam_layer``) and ``set_attention_capture``.
"""

from __future__ import annotations

from . import variants as _variants  # noqa: F401  (registers the variants)
from .densenet import DenseNet121Classifier
from .registry import build_model, list_models, register_model
from .vit import ConvStemViT

#: The starter model's variant: vit-h16-224's network at the deployed 128 px input, chosen by
#: benchmarks/latency.py (<= 1/4 of DenseNet-121's latency) and benchmarks/real_cxr.py.
DEFAULT_MODEL: str = "vit-h16-128"

__all__ = [
    "DEFAULT_MODEL",
    "ConvStemViT",
    "DenseNet121Classifier",
    "build_model",
    "list_models",
    "register_model",
]
