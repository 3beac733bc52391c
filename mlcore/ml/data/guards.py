"""Checks a training job runs before it spends hours on a data set that cannot work."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data.manifest import check_class_key, check_split
from mlcore.ml.data.store import DatasetStore


def check_trainable(
    store: DatasetStore,
    splits: Sequence[str] = ("train", "val"),
    *,
    allowed_empty_classes: Collection[str] = (),
    classes: Sequence[str] = CLASS_KEYS,
) -> None:
    """Raise ``ValueError`` listing every empty split and every class without train images.

    A class with no training images would still get a logit that never learns, and an empty
    val split makes early stopping and calibration meaningless; both are refused unless the
    class is named in ``allowed_empty_classes`` (e.g. a demo trained on CXR classes only).
    """
    for s in splits:
        check_split(s)
    for c in (*classes, *allowed_empty_classes):
        check_class_key(c)
    rows = store.manifest()
    problems: list[str] = []
    per_split: dict[str, int] = dict.fromkeys(splits, 0)
    train_classes: set[str] = set()
    for r in rows:
        if r.split in per_split:
            per_split[r.split] += 1
        if r.split == "train":
            train_classes.add(r.class_key)
    empty_splits = [s for s, n in per_split.items() if n == 0]
    if empty_splits:
        problems.append(f"empty split(s): {', '.join(empty_splits)}")
    if "train" in splits:
        missing = [c for c in classes if c not in train_classes and c not in allowed_empty_classes]
        if missing:
            problems.append(f"class(es) without train images: {', '.join(missing)}")
    if problems:
        raise ValueError(
            f"data set {store.uri} is not trainable: "
            + "; ".join(problems)
            + " (pass allowed_empty_classes=... to accept missing classes deliberately)"
        )
