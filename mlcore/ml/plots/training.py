"""Training curves of a job or a run: loss (train and val) and validation macro-F1 per
epoch, as inline SVG. Input: the per-epoch reports ``train(on_epoch=...)`` produces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.ticker import MaxNLocator

from mlcore.ml.plots._svg import PALETTE, svg_figure


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, h in enumerate(history):
        if key in h and h[key] is not None:
            xs.append(int(h.get("epoch", i + 1)))
            ys.append(float(h[key]))
    return xs, ys


def training_curves_svg(history: Sequence[Mapping[str, Any]], *, epochs: int | None = None,
                        width_in: float = 7.0, height_in: float = 2.8) -> str:
    """Two panels side by side; the x axis spans the planned ``epochs`` so a running job's
    curves grow into a fixed frame. An empty history gives empty, labelled axes."""
    with svg_figure(width_in, height_in) as (fig, out):
        loss_ax, f1_ax = fig.subplots(1, 2)
        for key, label, colour in (("train_loss", "train", PALETTE[0]),
                                   ("val_loss", "val", PALETTE[1])):
            xs, ys = _series(history, key)
            if xs:
                loss_ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=label)
        xs, ys = _series(history, "val_macro_f1")
        if xs:
            f1_ax.plot(xs, ys, marker="o", markersize=3, color=PALETTE[2])
        f1_ax.set_ylim(0.0, 1.0)
        loss_ax.set_title("Loss", fontsize=10)
        f1_ax.set_title("Validation macro-F1", fontsize=10)
        last = max([int(h.get("epoch", 0)) for h in history] + [epochs or 0, 1])
        for ax in (loss_ax, f1_ax):
            ax.set_xlabel("epoch")
            ax.set_xlim(0.5, last + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        if loss_ax.get_legend_handles_labels()[0]:
            loss_ax.legend(fontsize=8)
    return out[0]
