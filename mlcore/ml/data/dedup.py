"""Exact and near-duplicate removal across all sources.

Public CXR collections copy each other (the same radiograph re-encoded, resized or slightly
brightened), and a copy in train and its twin in test inflates every reported figure. Exact
copies are found by the pixel SHA-256, near copies by the Hamming distance of 16x16 dHashes
through a BK-tree, so thousands of images need far fewer than n^2 comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class BKTree:
    """Metric tree over ints under Hamming distance; ``query`` returns ``(distance, payload)``."""

    def __init__(self) -> None:
        # node: (value, payload, children keyed by distance to this node)
        self._root: tuple[int, int, dict[int, tuple]] | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: int, payload: int) -> None:
        self._size += 1
        if self._root is None:
            self._root = (value, payload, {})
            return
        node = self._root
        while True:
            d = (node[0] ^ value).bit_count()
            child = node[2].get(d)
            if child is None:
                node[2][d] = (value, payload, {})
                return
            node = child

    def query(self, value: int, radius: int) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        stack = [self._root] if self._root is not None else []
        while stack:
            node_value, payload, children = stack.pop()
            d = (node_value ^ value).bit_count()
            if d <= radius:
                found.append((d, payload))
            for child_d, child in children.items():
                # triangle inequality: only subtrees within [d - r, d + r] can hold matches
                if d - radius <= child_d <= d + radius:
                    stack.append(child)
        return found


@dataclass(frozen=True)
class HashedImage:
    label: str
    sha256: str
    phash: str
    name: str  # shown in reasons (original path)


@dataclass
class DedupResult:
    keep: list[int]
    dropped: list[tuple[int, str]] = field(default_factory=list)
    exact: int = 0
    near: int = 0
    conflicting: int = 0


def deduplicate(items: Sequence[HashedImage], *, near_hamming: int | None) -> DedupResult:
    """Greedy clustering in the given order; the first image of a cluster represents it.

    A cluster whose images carry different labels is dropped whole: the data cannot say which
    label is right, and keeping either would teach the model a coin flip.
    ``near_hamming=None`` checks exact copies only.
    """
    rep_of_sha: dict[str, int] = {}
    tree = BKTree()
    members: dict[int, list[tuple[int, int | None]]] = {}  # rep -> [(index, hamming or None)]
    reps: list[int] = []
    for i, item in enumerate(items):
        rep = rep_of_sha.get(item.sha256)
        dist: int | None = None
        if rep is None and near_hamming is not None and near_hamming >= 0:
            matches = tree.query(int(item.phash, 16), near_hamming)
            if matches:
                dist, rep = min(matches)
        if rep is None:
            rep_of_sha[item.sha256] = i
            tree.add(int(item.phash, 16), i)
            members[i] = []
            reps.append(i)
            continue
        rep_of_sha.setdefault(item.sha256, rep)
        if item.sha256 == items[rep].sha256:
            dist = None
        elif dist is None:  # pixel copy of an earlier near duplicate of ``rep``
            dist = (int(item.phash, 16) ^ int(items[rep].phash, 16)).bit_count()
        members[rep].append((i, dist))

    result = DedupResult(keep=[])
    for rep in reps:
        cluster = members[rep]
        labels = {items[rep].label} | {items[i].label for i, _ in cluster}
        if len(labels) > 1:
            why = "conflicting labels for one image: " + ", ".join(
                f"{items[j].name} ({items[j].label})" for j in [rep] + [i for i, _ in cluster]
            )
            result.dropped += [(j, why) for j in [rep] + [i for i, _ in cluster]]
            result.conflicting += 1 + len(cluster)
            continue
        result.keep.append(rep)
        for i, dist in cluster:
            if dist is None:
                result.exact += 1
                result.dropped.append((i, f"exact duplicate of {items[rep].name}"))
            else:
                result.near += 1
                result.dropped.append(
                    (i, f"near duplicate of {items[rep].name} (dHash Hamming distance {dist})")
                )
    result.keep.sort()
    result.dropped.sort()
    return result
