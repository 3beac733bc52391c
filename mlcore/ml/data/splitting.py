"""Patient-level split with per-class proportions and a fixed seed.

Images of one patient are correlated (same anatomy, same scanner), so a patient in train and
test leaks. Every patient group goes to exactly one split; groups are dealt per class (the
group's main class) so each class keeps roughly the requested fractions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from mlcore.ml.classes import CLASS_KEYS

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.1, "final_eval": 0.1}
BUILD_SPLITS = ("train", "val", "test", "final_eval")


def normalise_fractions(fractions: Mapping[str, float] | None) -> dict[str, float]:
    """Validate and scale to sum 1; ``feedback`` is refused (it holds only corrections)."""
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    unknown = [k for k in fractions if k not in BUILD_SPLITS]
    if unknown:
        raise ValueError(
            f"fractions name unknown or reserved split(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(BUILD_SPLITS)} ('feedback' is filled by corrections only)"
        )
    if any(v < 0 for v in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"fractions must be >= 0 with a positive sum, got {fractions}")
    total = sum(fractions.values())
    return {s: fractions[s] / total for s in BUILD_SPLITS if fractions.get(s, 0) > 0}


def main_class(counts: Counter[str], class_sizes: Counter[str]) -> str:
    """The group's most frequent class; ties go to the rarer class so rare classes are dealt
    their groups instead of losing them to a common class."""
    return min(counts, key=lambda c: (-counts[c], class_sizes[c], CLASS_KEYS.index(c)))


def assign_splits(
    groups: Mapping[str, Counter[str]],
    *,
    fractions: Mapping[str, float] | None = None,
    seed: int = 42,
) -> dict[str, str]:
    """Map each patient group to a split.

    ``groups`` maps patient key -> Counter of class keys of its images. Within each main
    class, groups are shuffled with a seed derived from ``seed`` and the class (so adding a
    class does not reshuffle the others), then dealt largest first to the split furthest
    below its target image count.
    """
    fr = normalise_fractions(fractions)
    class_sizes: Counter[str] = Counter()
    for counts in groups.values():
        class_sizes.update(counts)
    by_class: dict[str, list[str]] = {}
    for key in sorted(groups):
        by_class.setdefault(main_class(groups[key], class_sizes), []).append(key)

    assignment: dict[str, str] = {}
    for class_key in sorted(by_class, key=CLASS_KEYS.index):
        keys = by_class[class_key]
        random.Random(f"{seed}:{class_key}").shuffle(keys)
        keys.sort(key=lambda k: -sum(groups[k].values()))  # stable: shuffle order among ties
        total = sum(sum(groups[k].values()) for k in keys)
        target = {s: f * total for s, f in fr.items()}
        filled = dict.fromkeys(fr, 0)
        for key in keys:
            split = max(fr, key=lambda s: target[s] - filled[s])  # first split wins ties
            assignment[key] = split
            filled[split] += sum(groups[key].values())
    return assignment
