"""Confusion-matrix image drawn with Pillow (no matplotlib backend state in workers)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_CELL = 44
_LABEL_W = 150
_TOP = 150


def confusion_matrix_png(
    cm: np.ndarray | Sequence[Sequence[int]], class_keys: Sequence[str]
) -> bytes:
    """PNG of ``cm[true, predicted]``: cells shaded by row share (recall), counts printed.

    Row-normalised shading so a rare class's errors are as visible as a common class's.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_keys)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be ({k}, {k}) for {k} class keys, got {cm.shape}")
    width, height = _LABEL_W + k * _CELL + 10, _TOP + k * _CELL + 30
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    for i in range(k):
        for j in range(k):
            x0, y0 = _LABEL_W + j * _CELL, _TOP + i * _CELL
            level = int(255 - 200 * share[i, j])
            fill = (level, level, 255) if i == j else (255, level, level)
            draw.rectangle([x0, y0, x0 + _CELL - 1, y0 + _CELL - 1], fill=fill, outline="grey")
            text = str(int(cm[i, j]))
            tw = draw.textlength(text, font=font)
            draw.text((x0 + (_CELL - tw) / 2, y0 + _CELL / 2 - 5), text, fill="black", font=font)
    for i, key in enumerate(class_keys):
        draw.text((4, _TOP + i * _CELL + _CELL / 2 - 5), key, fill="black", font=font)
        label = Image.new("RGB", (_TOP - 10, 14), "white")
        ImageDraw.Draw(label).text((2, 1), key, fill="black", font=font)
        rotated = label.rotate(90, expand=True)
        img.paste(rotated, (_LABEL_W + i * _CELL + _CELL // 2 - 7, 5))
    draw.text((4, _TOP - 18), "true \\ predicted", fill="black", font=font)
    draw.text((4, height - 20), "shade = share of the true class's row", fill="grey", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
