"""Manifest rows of a dataset version and their canonical CSV form.

The manifest is the one place that says which image belongs to which split, class, patient
and source; training, the data dashboard and MLflow lineage (``manifest_hash``) all read it.
It is written canonically (fixed column order, rows sorted by path, ``\\n`` line ends, JSON
``extra`` with sorted keys) so that the same content always hashes the same.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcore.ml.classes import CLASS_KEYS

SPLITS: tuple[str, ...] = ("train", "val", "test", "final_eval", "feedback")

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "class_key",
    "split",
    "patient_key",
    "source",
    "sha256",
    "phash",
    "width",
    "height",
    "synthetic",
    "original_path",
    "extra",
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
    return split


def check_class_key(class_key: str) -> str:
    if class_key not in CLASS_KEYS:
        raise ValueError(f"unknown class key {class_key!r}; accepted: {', '.join(CLASS_KEYS)}")
    return class_key


def check_relative_path(path: str) -> str:
    """Refuse absolute paths and ``..`` so a manifest can never point outside its store."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"dataset path must be a non-empty string, got {path!r}")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"dataset path {path!r} must be relative, '/'-separated, without '.' or '..' parts"
        )
    return path


@dataclass(frozen=True)
class ManifestRow:
    """One image of a dataset version; ``path`` is ``<split>/<class_key>/<name>``.

    ``sha256`` is the SHA-256 of the decoded 8-bit pixels (with the shape), so the same image
    re-encoded differently still has the same hash; ``phash`` is the 16x16 dHash (64 hex
    digits) used for near-duplicate checks; ``extra`` carries lineage (for feedback rows: study,
    image hash, reader, model version, time) and provenance (licence, upstream path).
    """

    path: str
    class_key: str
    split: str
    patient_key: str
    source: str
    sha256: str
    phash: str
    width: int
    height: int
    synthetic: bool = False
    original_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        check_split(self.split)
        check_class_key(self.class_key)
        parts = self.path.split("/")
        if len(parts) != 3 or parts[0] != self.split or parts[1] != self.class_key:
            raise ValueError(
                f"manifest path {self.path!r} must be '{self.split}/{self.class_key}/<name>'"
            )
        if not self.patient_key:
            raise ValueError(f"manifest row {self.path!r} has an empty patient_key")
        if not _HEX64.match(self.sha256) or not _HEX64.match(self.phash):
            raise ValueError(
                f"manifest row {self.path!r}: sha256 and phash must be 64 lowercase hex digits"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"manifest row {self.path!r}: width/height must be positive")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def to_csv_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "class_key": self.class_key,
            "split": self.split,
            "patient_key": self.patient_key,
            "source": self.source,
            "sha256": self.sha256,
            "phash": self.phash,
            "width": str(self.width),
            "height": str(self.height),
            "synthetic": "1" if self.synthetic else "0",
            "original_path": self.original_path,
            "extra": json.dumps(self.extra, sort_keys=True, separators=(",", ":")),
        }

    @classmethod
    def from_csv_dict(cls, record: Mapping[str, str], *, line: int = 0) -> ManifestRow:
        try:
            extra_text = record.get("extra") or "{}"
            extra = json.loads(extra_text)
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be a JSON object, got {extra_text!r}")
            synthetic = (record.get("synthetic") or "0").strip()
            if synthetic not in ("0", "1"):
                raise ValueError(f"synthetic must be 0 or 1, got {synthetic!r}")
            return cls(
                path=record["path"],
                class_key=record["class_key"],
                split=record["split"],
                patient_key=record["patient_key"],
                source=record["source"],
                sha256=record["sha256"],
                phash=record["phash"],
                width=int(record["width"]),
                height=int(record["height"]),
                synthetic=synthetic == "1",
                original_path=record.get("original_path") or "",
                extra=extra,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"manifest line {line}: {exc}") from exc


def rows_to_csv(rows: Iterable[ManifestRow]) -> bytes:
    """Canonical CSV bytes: sorted by path; duplicate paths refused."""
    ordered = sorted(rows, key=lambda r: r.path)
    seen: set[str] = set()
    for row in ordered:
        if row.path in seen:
            raise ValueError(f"manifest has the path {row.path!r} twice")
        seen.add(row.path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in ordered:
        writer.writerow(row.to_csv_dict())
    return buf.getvalue().encode("utf-8")


def rows_from_csv(data: bytes) -> list[ManifestRow]:
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(
            f"manifest lacks the columns {', '.join(missing)}; "
            f"expected: {', '.join(MANIFEST_COLUMNS)}"
        )
    # line numbers count the header as line 1, as an editor would show them
    return [ManifestRow.from_csv_dict(rec, line=i) for i, rec in enumerate(reader, start=2)]
