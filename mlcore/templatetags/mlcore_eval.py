"""Formatting of evaluation figures: ``[point, low, high]`` cells, differences, class names."""

from __future__ import annotations

from typing import Any

from django import template

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.ml.formatting import format_interval

register = template.Library()


@register.filter
def ci(cell: Any, digits: int = 3) -> str:
    """``[0.91, 0.85, 0.96]`` -> ``0.910 [0.850, 0.960]``; undefined -> an en dash."""
    return format_interval(cell, digits=digits)


@register.filter
def signed_ci(cell: Any, digits: int = 3) -> str:
    """A difference with its interval, signs shown: ``+0.012 [-0.010, +0.031]``."""
    return format_interval(cell, digits=digits, signed=True)


@register.filter
def ci_class(cell: Any) -> str:
    """CSS class of a difference: interval above 0 (better), below 0 (worse), else none."""
    if not cell or cell[1] is None:
        return ""
    if cell[1] > 0:
        return "diff-better"
    if cell[2] < 0:
        return "diff-worse"
    return ""


@register.filter
def num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


@register.filter
def classname(key: str) -> str:
    info = CLASS_BY_KEY.get(key or "")
    return info.display_name if info else (key or "no class (scope undecided)")


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if hasattr(mapping, "get") else None
