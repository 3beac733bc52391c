"""matplotlib figure -> SVG text, with the Agg backend and no global pyplot state (workers
and web processes render concurrently; pyplot's figure registry is not thread-safe)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

from matplotlib.figure import Figure

# Colour-blind-safe (Okabe-Ito) and readable on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
           "#999999")


@contextmanager
def svg_figure(width_in: float = 6.0, height_in: float = 4.0) -> Iterator[tuple[Figure, list[str]]]:
    """``with svg_figure() as (fig, out): ...draw on fig...``; ``out[0]`` is the SVG after."""
    fig = Figure(figsize=(width_in, height_in), dpi=96, layout="constrained")
    out: list[str] = []
    yield fig, out
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    # Drop the XML prolog and DOCTYPE so the SVG can be inlined into an HTML page.
    start = svg.find("<svg")
    out.append(csp_safe(svg[start:] if start >= 0 else svg))


_STYLE_ATTR = re.compile(r'style="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style[^>]*>\*\{([^}]*)\}</style>")


def _as_attributes(declarations: str) -> str:
    pairs = (d.split(":", 1) for d in declarations.split(";") if ":" in d)
    return " ".join(f'{k.strip()}="{v.strip()}"' for k, v in pairs)


def csp_safe(svg: str) -> str:
    """Inline ``style="..."`` attributes and matplotlib's one ``<style>`` element become SVG
    presentation attributes (``fill="#fff"``): a page CSP without 'unsafe-inline' blocks
    inline styles, not presentation attributes. Every property matplotlib writes (fill,
    stroke*, opacity, ...) exists as one."""
    match = _STYLE_ELEMENT.search(svg)
    if match:
        svg = svg.replace(match.group(0), "")
        svg = svg.replace("<svg ", f"<svg {_as_attributes(match.group(1))} ", 1)
    return _STYLE_ATTR.sub(lambda m: _as_attributes(m.group(1)), svg)
