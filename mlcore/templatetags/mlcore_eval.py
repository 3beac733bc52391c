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


@register.filter
def prop(p: Any, digits: int = 3) -> str:
    """A ``Proportion`` (rollout agreement): ``0.870 [0.810, 0.915] (87/100)``; no reads -> –."""
    if p is None or not getattr(p, "n", 0):
        return "–"
    lo, hi = p.interval
    return f"{p.rate:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}] ({p.k}/{p.n})"


@register.filter
def diff_ci(d: Any, digits: int = 3) -> str:
    """A difference with ``difference``/``low``/``high`` attributes: ``-0.120 [-0.210, -0.030]``."""
    if d is None or getattr(d, "difference", None) is None:
        return "–"
    return f"{d.difference:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


@register.filter
def diff_class(d: Any) -> str:
    """CSS class of such a difference: interval above 0 (better), below 0 (worse), else none."""
    if d is None or getattr(d, "low", None) is None:
        return ""
    return "diff-better" if d.low > 0 else "diff-worse" if d.high < 0 else ""
