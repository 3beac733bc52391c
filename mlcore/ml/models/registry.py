"""Name -> builder registry for model variants (timm-style ``register_model``).

Variants are registered by name so a model version in the registry (MLflow) only needs
``default_cfg`` to be rebuilt: ``build_model(cfg["name"], **other_cfg_keys)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

_REGISTRY: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[B], B]:
    """Decorator: ``@register_model("vit-s16-224") def builder(**overrides) -> nn.Module``."""

    def decorate(fn: B) -> B:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorate


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build variant ``name``; ``overrides`` replace its constructor defaults.

    ``overrides`` may repeat ``name`` (as found in ``default_cfg``); it must then agree.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown model {name!r}; registered: {', '.join(list_models())}"
        ) from None
    cfg_name = overrides.pop("name", name)
    if cfg_name != name:
        raise ValueError(f"override name={cfg_name!r} disagrees with model name {name!r}")
    return builder(**overrides)
