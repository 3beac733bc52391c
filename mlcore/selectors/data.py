"""Reads of the data page: dataset versions, and per version what it holds and the proof
that its splits are clean, computed from the manifest rows (never carried over from what the
builder meant to do).

The per-version overview walks every row (near-duplicate search included), so it is cached
under the manifest's hash: the same manifest always gives the same figures, and a new
feedback row changes the hash and so the key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.core.cache import cache

from mlcore.ml.classes import CLASS_BY_KEY, CLASS_KEYS
from mlcore.ml.data import SPLITS, ManifestRow, open_store
from mlcore.ml.data.dedup import BKTree
from mlcore.models import DatasetVersion

SAMPLES_PER_CELL = 3
EXAMPLES_LIMIT = 20
CACHE_TIMEOUT_S = 24 * 3600
DEFAULT_NEAR_DUP_HAMMING = 12
# What clinical writes into a feedback row's ``extra`` (clinical.services.reviews).
LINEAGE_KEYS = ("study", "reader", "model_name", "model_version", "verdict", "time", "image_sha256")


def dataset_versions(*, kind: str | None = None, ready_only: bool = False) -> list[DatasetVersion]:
    """Known dataset versions, newest first, with who created them; ``kind`` ("training" or
    "evaluation") and ``ready_only`` narrow it (a training form offers ready training sets)."""
    qs = DatasetVersion.objects.select_related("created_by").order_by("-created_at", "-id")
    if kind is not None:
        qs = qs.filter(kind=kind)
    if ready_only:
        qs = qs.filter(status=DatasetVersion.Status.READY)
    return list(qs)


def dataset_version_get(*, slug: str) -> DatasetVersion | None:
    return DatasetVersion.objects.filter(slug=slug).first()


def dataset_manifest_has_path(*, dataset: DatasetVersion, path: str) -> bool:
    """Whether ``path`` is an image of ``dataset``'s manifest (thumbnails serve nothing else).

    The path set is cached by manifest hash: a page of a hundred thumbnails would otherwise
    parse the whole manifest a hundred times."""
    store = open_store(dataset.store_uri)
    key = f"mlcore:data:paths:v1:{store.manifest_hash()}"
    paths = cache.get(key)
    if paths is None:
        paths = frozenset(r.path for r in store.manifest())
        cache.set(key, paths, CACHE_TIMEOUT_S)
    return path in paths


@dataclass(frozen=True)
class NearDuplicatePair:
    path_a: str
    split_a: str
    path_b: str
    split_b: str
    distance: int


@dataclass(frozen=True)
class LineageRow:
    path: str
    class_key: str
    study: str
    reader: str
    model: str
    verdict: str
    time: str
    day: str


@dataclass
class DataOverview:
    """One dataset version's figures, computed from its manifest ``manifest_hash``."""

    manifest_hash: str
    near_dup_hamming: int
    classes: list[str]
    splits: list[str]
    counts: dict[str, dict[str, int]]
    split_totals: dict[str, int]
    class_totals: dict[str, int]
    total: int
    patients: dict[str, int]
    shared_patients: list[str]
    near_duplicates: list[NearDuplicatePair]
    sources: dict[str, dict[str, int]]
    samples: dict[str, dict[str, list[str]]]
    feedback_per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    lineage: list[LineageRow] = field(default_factory=list)

    @property
    def patients_shared(self) -> int:
        return len(self.shared_patients)

    @property
    def near_duplicates_across_splits(self) -> int:
        return len(self.near_duplicates)

    @property
    def clean(self) -> bool:
        return not self.shared_patients and not self.near_duplicates

    def class_label(self, key: str) -> str:
        info = CLASS_BY_KEY.get(key)
        return info.display_name if info else key


def _threshold(dataset: DatasetVersion) -> int:
    value = (dataset.options or {}).get("near_dup_hamming")
    return int(value) if isinstance(value, int) and value >= 0 else DEFAULT_NEAR_DUP_HAMMING


def dataset_overview(*, dataset: DatasetVersion) -> DataOverview:
    """The figures of ``dataset``'s store as it is now (feedback included), cached by the
    manifest hash. An empty or not yet built store gives empty figures."""
    store = open_store(dataset.store_uri)
    manifest_hash = store.manifest_hash()
    threshold = _threshold(dataset)
    key = f"mlcore:data:overview:v1:{manifest_hash}:{threshold}"
    overview = cache.get(key)
    if overview is None:
        overview = overview_from_rows(store.manifest(), manifest_hash=manifest_hash,
                                      near_dup_hamming=threshold)
        cache.set(key, overview, CACHE_TIMEOUT_S)
    return overview


def overview_from_rows(rows: list[ManifestRow], *, manifest_hash: str = "",
                       near_dup_hamming: int = DEFAULT_NEAR_DUP_HAMMING) -> DataOverview:
    present = {r.class_key for r in rows}
    classes = [k for k in CLASS_KEYS if k in present]
    counts = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    patients_in: dict[str, set[str]] = defaultdict(set)
    splits_of: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    cells: dict[str, dict[str, list[ManifestRow]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        counts[r.split][r.class_key] += 1
        patients_in[r.split].add(r.patient_key)
        splits_of[r.patient_key].add(r.split)
        sources[r.class_key][r.source] += 1
        cells[r.class_key][r.split].append(r)
    class_totals = {c: sum(counts[s][c] for s in SPLITS) for c in classes}
    feedback_per_day, lineage = _feedback(r for r in rows if r.split == "feedback")
    return DataOverview(
        manifest_hash=manifest_hash,
        near_dup_hamming=near_dup_hamming,
        classes=classes,
        splits=[s for s in SPLITS if any(counts[s].values())],
        counts=counts,
        split_totals={s: sum(counts[s].values()) for s in SPLITS},
        class_totals=class_totals,
        total=len(rows),
        patients={s: len(patients_in[s]) for s in SPLITS},
        shared_patients=sorted(p for p, s in splits_of.items() if len(s) > 1),
        near_duplicates=near_duplicates_across_splits(rows, near_dup_hamming),
        sources={c: dict(sources[c].most_common()) for c in classes},
        samples={c: {s: _samples(cells[c][s]) for s in SPLITS if cells[c][s]} for c in classes},
        feedback_per_day=feedback_per_day,
        lineage=lineage,
    )


def near_duplicates_across_splits(rows: list[ManifestRow], near_dup_hamming: int) -> list[NearDuplicatePair]:
    """Every pair of images in two different splits whose dHashes are within
    ``near_dup_hamming`` bits (pixel copies are at distance 0), through a BK-tree."""
    tree = BKTree()
    pairs: list[NearDuplicatePair] = []
    ordered = sorted(rows, key=lambda r: r.path)
    for i, row in enumerate(ordered):
        value = int(row.phash, 16)
        for distance, j in tree.query(value, near_dup_hamming):
            other = ordered[j]
            if other.split != row.split:
                pairs.append(NearDuplicatePair(other.path, other.split, row.path, row.split, distance))
        tree.add(value, i)
    return sorted(pairs, key=lambda p: (p.distance, p.path_a, p.path_b))


def _samples(rows: list[ManifestRow]) -> list[str]:
    # ordered by pixel hash: a fixed choice that is not biased to the first files of a source
    return [r.path for r in sorted(rows, key=lambda r: (r.sha256, r.path))[:SAMPLES_PER_CELL]]


def _day(value: str) -> str:
    try:
        return datetime.fromisoformat(value).date().isoformat()
    except (TypeError, ValueError):
        return "unknown"


def _feedback(rows) -> tuple[dict[str, dict[str, int]], list[LineageRow]]:
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    lineage: list[LineageRow] = []
    for r in rows:
        extra: dict[str, Any] = r.extra or {}
        when = str(extra.get("time", ""))
        day = _day(when)
        per_day[day][r.class_key] += 1
        model = " v".join(x for x in (str(extra.get("model_name", "")),
                                       str(extra.get("model_version", ""))) if x)
        lineage.append(LineageRow(
            path=r.path, class_key=r.class_key, study=str(extra.get("study", "")),
            reader=str(extra.get("reader", "")), model=model,
            verdict=str(extra.get("verdict", "")), time=when, day=day,
        ))
    lineage.sort(key=lambda x: (x.time, x.path), reverse=True)
    return _with_empty_days({d: dict(c) for d, c in sorted(per_day.items())}), lineage


def _with_empty_days(per_day: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Days without corrections as empty entries, so the chart's axis is time (spans of up to
    a year and a half; beyond that only the days with corrections)."""
    dated = sorted(d for d in per_day if d != "unknown")
    if len(dated) < 2:
        return per_day
    first, last = date.fromisoformat(dated[0]), date.fromisoformat(dated[-1])
    if (last - first).days > 550:
        return per_day
    out = {(first + timedelta(days=i)).isoformat(): {} for i in range((last - first).days + 1)}
    out.update(per_day)
    return dict(sorted(out.items()))


def dataset_figures(*, overview: DataOverview) -> dict[str, str]:
    """The page's SVG charts for ``overview``, cached with it (same manifest, same SVG)."""
    key = f"mlcore:data:figures:v1:{overview.manifest_hash}:{overview.near_dup_hamming}"
    figures = cache.get(key) if overview.manifest_hash else None
    if figures is None:
        from mlcore.ml.plots.data import (  # matplotlib: only pages that draw pay its import
            feedback_growth_svg,
            split_class_bars_svg,
        )

        labels = {c: overview.class_label(c) for c in overview.classes}
        figures = {
            "counts": split_class_bars_svg(overview.counts, classes=overview.classes,
                                           splits=SPLITS, labels=labels),
            "feedback": feedback_growth_svg(overview.feedback_per_day, classes=overview.classes,
                                            labels=labels),
        }
        if overview.manifest_hash:
            cache.set(key, figures, CACHE_TIMEOUT_S)
    return figures
