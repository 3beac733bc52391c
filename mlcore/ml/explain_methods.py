"""The on-demand attribution methods (captum) and their names for people: the one list the
predictor, the inference service and the study page read. Torch-free, so web processes can
list the methods without loading the model code."""

from __future__ import annotations

ATTRIBUTION_METHODS: dict[str, str] = {
    "integrated_gradients": "Integrated Gradients",
    "grad_cam": "Grad-CAM",
}
