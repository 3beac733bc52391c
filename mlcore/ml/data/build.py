"""Build a dataset version from import candidates: decode, de-duplicate, split, write.

Decoded images are staged as PNG in a temporary directory (one decode per file, bounded
memory) and only written to the destination store once the split is known, so a failed build
leaves the destination without a manifest rather than half a dataset.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data.dedup import HashedImage, deduplicate
from mlcore.ml.data.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_gray,
    dhash_hex,
    encode_png,
    pixel_sha256,
)
from mlcore.ml.data.importers import Candidate
from mlcore.ml.data.manifest import ManifestRow
from mlcore.ml.data.report import SplitReport
from mlcore.ml.data.splitting import BUILD_SPLITS, assign_splits, normalise_fractions
from mlcore.ml.data.store import DatasetStore, namespaced_patient, safe_stem

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` with stage ``"decode"`` or ``"write"``."""


@dataclass(frozen=True)
class _Staged:
    candidate: Candidate
    staged: Path
    sha256: str
    phash: str
    width: int
    height: int


def _check_candidates(candidates: list[Candidate]) -> None:
    bad = sorted({c.class_key for c in candidates if c.class_key not in CLASS_KEYS})
    if bad:
        raise ValueError(
            f"candidates have unknown class key(s) {', '.join(map(repr, bad))}; "
            f"accepted: {', '.join(CLASS_KEYS)}"
        )
    empty = [str(c.path) for c in candidates if not c.patient_key or not c.source]
    if empty:
        raise ValueError(f"candidates without patient_key or source: {', '.join(empty[:5])}")


def build_dataset(
    candidates: Iterable[Candidate],
    dest: DatasetStore,
    *,
    seed: int = 42,
    fractions: Mapping[str, float] | None = None,
    near_dup_hamming: int | None = 12,
    max_side: int | None = 512,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = 16,
    progress: Progress | None = None,
    single_split: str | None = None,
) -> SplitReport:
    """Import ``candidates`` into the empty store ``dest`` and return its split report.

    Images become 8-bit grayscale PNG, longest side at most ``max_side`` (never upscaled;
    ``None`` keeps the size). Unreadable files are skipped with a reason; exact and near
    duplicates (dHash Hamming distance <= ``near_dup_hamming``; ``None`` = exact only) are
    removed across all sources; the split is by patient, ``fractions`` over train, val, test
    and final_eval (default 0.7/0.1/0.1/0.1).

    ``single_split`` (e.g. ``"final_eval"``) puts every kept image in that one split instead:
    an evaluation-only set, which a hospital measures a version on and nothing trains on.
    It excludes ``fractions``.
    """
    if single_split is not None:
        if fractions is not None:
            raise ValueError("single_split and fractions exclude each other")
        if single_split not in BUILD_SPLITS:
            raise ValueError(
                f"single_split {single_split!r} is not a build split; accepted: "
                f"{', '.join(BUILD_SPLITS)} ('feedback' is filled by corrections only)"
            )
    fr = normalise_fractions(fractions)
    cands = sorted(candidates, key=lambda c: (c.source, str(c.path)))
    _check_candidates(cands)
    if dest.manifest():
        raise ValueError(
            f"{dest.uri} already holds a dataset version; build into an empty store "
            "(versions are immutable; corrections go in with add_sample)"
        )
    with tempfile.TemporaryDirectory(prefix="radviewer-build-") as tmp:
        staged, skipped = _stage(cands, Path(tmp), max_side, max_pixels, min_side, progress)
        hashed = [HashedImage(s.candidate.class_key, s.sha256, s.phash, _label(s)) for s in staged]
        dedup = deduplicate(hashed, near_hamming=near_dup_hamming)
        kept = [staged[i] for i in dedup.keep]

        groups: dict[str, Counter[str]] = {}
        for s in kept:
            groups.setdefault(_patient(s.candidate), Counter())[s.candidate.class_key] += 1
        if single_split is not None:
            split_of = dict.fromkeys(groups, single_split)
        else:
            split_of = assign_splits(groups, fractions=fr, seed=seed)

        rows = _rows(kept, split_of)
        for n, (row, s) in enumerate(zip(rows, kept, strict=True), start=1):
            dest.write_bytes(row.path, s.staged.read_bytes())
            if progress:
                progress("write", n, len(rows))
    dest.write_manifest(rows)
    report = SplitReport.from_rows(
        rows,
        duplicates_dropped=len(dedup.dropped),
        exact_duplicates=dedup.exact,
        near_duplicates=dedup.near,
        conflicting_label_dropped=dedup.conflicting,
        dropped=[(_label(staged[i]), why) for i, why in dedup.dropped],
        skipped=skipped,
        seed=seed,
    )
    dest.write_build_report(report)
    return report


def _label(s: _Staged | Candidate) -> str:
    c = s.candidate if isinstance(s, _Staged) else s
    return c.original_path or str(c.path)


def _patient(c: Candidate) -> str:
    return namespaced_patient(c.patient_namespace or c.source, c.patient_key)


def _stage(
    cands: list[Candidate],
    tmp: Path,
    max_side: int | None,
    max_pixels: int,
    min_side: int,
    progress: Progress | None,
) -> tuple[list[_Staged], list[tuple[str, str]]]:
    staged: list[_Staged] = []
    skipped: list[tuple[str, str]] = []
    for n, c in enumerate(cands, start=1):
        try:
            arr = decode_gray(c.path, max_pixels=max_pixels, max_side=max_side, min_side=min_side)
        except ImageDecodeError as exc:
            skipped.append((_label(c), exc.reason))
        else:
            out = tmp / f"{n}.png"
            out.write_bytes(encode_png(arr))
            staged.append(
                _Staged(c, out, pixel_sha256(arr), dhash_hex(arr), arr.shape[1], arr.shape[0])
            )
        if progress:
            progress("decode", n, len(cands))
    return staged, skipped


def _rows(kept: list[_Staged], split_of: Mapping[str, str]) -> list[ManifestRow]:
    rows: list[ManifestRow] = []
    used: set[str] = set()
    for s in kept:
        c = s.candidate
        split = split_of[_patient(c)]
        path = f"{split}/{c.class_key}/{safe_stem(c.path.name)}__{s.sha256[:12]}.png"
        if path in used:  # same stem and hash prefix: only the full hash is unique
            path = f"{split}/{c.class_key}/{safe_stem(c.path.name)}__{s.sha256}.png"
        used.add(path)
        rows.append(
            ManifestRow(
                path=path,
                class_key=c.class_key,
                split=split,
                patient_key=_patient(c),
                source=c.source,
                sha256=s.sha256,
                phash=s.phash,
                width=s.width,
                height=s.height,
                synthetic=c.synthetic,
                original_path=_label(c),
                extra=dict(c.extra),
            )
        )
    return rows
