"""Dataset stores: one dataset version on a local disk or in an S3 bucket.

The store is the data boundary between the clinical app and training (DESIGN.md section 3):
clinical writes confirmed corrections with :meth:`DatasetStore.add_sample`, training reads
rows and images; neither looks at the other's tables. Backends only provide byte-level
primitives and a serialised manifest update; everything else lives here once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import numpy as np

from mlcore.ml.data.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_gray,
    dhash_hex,
    encode_png,
    pixel_sha256,
)
from mlcore.ml.data.manifest import (
    ManifestRow,
    check_class_key,
    check_relative_path,
    check_split,
    rows_from_csv,
    rows_to_csv,
)
from mlcore.ml.data.report import SplitReport

T = TypeVar("T")
ManifestUpdate = Callable[[list[ManifestRow]], tuple[list[ManifestRow] | None, T]]

MANIFEST_NAME = "manifest.csv"
BUILD_REPORT_NAME = "build_report.json"
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(name: str, *, fallback: str = "image") -> str:
    """File-name stem reduced to ``[A-Za-z0-9._-]`` so paths are portable and S3-safe."""
    stem = Path(name).stem if name else ""
    stem = _UNSAFE_NAME_CHARS.sub("_", stem).strip("._")[:80]
    return stem or fallback


def sample_name(stem: str, sha256: str) -> str:
    """Content-addressed name: different images can never overwrite each other's file."""
    return f"{safe_stem(stem, fallback='sample')}__{sha256[:12]}.png"


def namespaced_patient(source: str, patient_key: str) -> str:
    """``source:patient`` so that ``patient 7`` of two collections are two people."""
    if not patient_key:
        raise ValueError("patient_key must not be empty")
    prefix = f"{source}:"
    return patient_key if patient_key.startswith(prefix) else prefix + patient_key


class DatasetStore(ABC):
    """One dataset version: ``<root>/<split>/<class-key>/<image>`` plus ``manifest.csv``."""

    uri: str

    # --- backend primitives -------------------------------------------------------------
    @abstractmethod
    def _read(self, rel: str) -> bytes:
        """Bytes at ``rel``; ``FileNotFoundError`` when absent."""

    @abstractmethod
    def _write(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` so readers see either the old or the whole new content."""

    @abstractmethod
    def _update_manifest(self, update: ManifestUpdate[T]) -> T:
        """Run ``update`` on the current rows and store its new rows, serialised with other
        writers (a file lock locally, a compare-and-swap on S3)."""

    # --- reading ------------------------------------------------------------------------
    def manifest(self) -> list[ManifestRow]:
        try:
            data = self._read(MANIFEST_NAME)
        except FileNotFoundError:
            return []
        return rows_from_csv(data)

    def rows(self, split: str | None = None, *, class_key: str | None = None) -> list[ManifestRow]:
        if split is not None:
            check_split(split)
        if class_key is not None:
            check_class_key(class_key)
        return [
            r
            for r in self.manifest()
            if (split is None or r.split == split)
            and (class_key is None or r.class_key == class_key)
        ]

    def read_bytes(self, path: str | ManifestRow) -> bytes:
        rel = path.path if isinstance(path, ManifestRow) else path
        return self._read(check_relative_path(rel))

    def read_image(self, path: str | ManifestRow) -> np.ndarray:
        """The image as uint8 HxW grayscale (16-bit files are stretched to 0..255)."""
        data = self.read_bytes(path)
        rel = path.path if isinstance(path, ManifestRow) else path
        try:
            return decode_gray(data)
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"{rel}: {exc.reason}") from None

    def manifest_hash(self) -> str:
        """SHA-256 of the manifest file as stored (MLflow lineage of a training run)."""
        try:
            data = self._read(MANIFEST_NAME)
        except FileNotFoundError:
            data = rows_to_csv([])
        return hashlib.sha256(data).hexdigest()

    def build_facts(self) -> dict[str, Any]:
        try:
            return SplitReport.facts_from_dict(json.loads(self._read(BUILD_REPORT_NAME)))
        except FileNotFoundError:
            return {}

    def split_report(self) -> SplitReport:
        """Counts recomputed from the manifest (feedback included) + the builder's figures."""
        return SplitReport.from_rows(self.manifest(), **self.build_facts())

    # --- writing ------------------------------------------------------------------------
    def write_manifest(self, rows: list[ManifestRow]) -> None:
        """Replace the manifest (validated: known splits/classes, unique paths)."""
        new_rows = list(rows)
        self._update_manifest(lambda _current: (new_rows, None))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write one file of the version (the builder's image writes); no manifest change."""
        self._write(check_relative_path(path), data)

    def write_build_report(self, report: SplitReport) -> None:
        self._write(BUILD_REPORT_NAME, json.dumps(report.build_facts(), indent=1).encode())

    def add_sample(
        self,
        *,
        split: str,
        class_key: str,
        data: bytes,
        patient_key: str,
        source: str,
        name: str | None = None,
        extra: Mapping[str, Any] | None = None,
        synthetic: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> ManifestRow:
        """Store one labelled image (e.g. a confirmed correction into ``feedback``).

        Idempotent: the same pixels in the same split and class return the existing row, so a
        retried task never adds a second copy. The file is written before the manifest row,
        so a crash leaves at most an unreferenced file, never a row without its image.
        """
        check_split(split)
        check_class_key(class_key)
        if not source:
            raise ValueError("source must not be empty")
        patient = namespaced_patient(source, patient_key)
        try:
            arr = decode_gray(bytes(data), max_pixels=max_pixels)
        except ImageDecodeError as exc:
            raise ValueError(f"add_sample: unusable image data: {exc.reason}") from None
        sha, phash = pixel_sha256(arr), dhash_hex(arr)
        # re-encoded from pixels: one format for training, and no text chunks (possible PHI)
        stored = encode_png(arr)
        extra_dict = json.loads(json.dumps(dict(extra or {}), sort_keys=True))

        def existing_in(rows: list[ManifestRow]) -> ManifestRow | None:
            for r in rows:
                if r.sha256 == sha and r.split == split and r.class_key == class_key:
                    return r
            return None

        current = self.manifest()
        found = existing_in(current)
        if found is not None:
            return found
        rel = f"{split}/{class_key}/{sample_name(name or '', sha)}"
        if any(r.path == rel for r in current):  # 48-bit hash-prefix clash: use the full hash
            rel = f"{split}/{class_key}/{safe_stem(name or 'sample')}__{sha}.png"
        self._write(rel, stored)

        def update(rows: list[ManifestRow]) -> tuple[list[ManifestRow] | None, ManifestRow]:
            again = existing_in(rows)
            if again is not None:  # a concurrent writer added the same image meanwhile
                return None, again
            if any(r.path == rel for r in rows):
                raise RuntimeError(f"{self.uri}/{rel} was taken by another image meanwhile")
            row = ManifestRow(
                path=rel,
                class_key=class_key,
                split=split,
                patient_key=patient,
                source=source,
                sha256=sha,
                phash=phash,
                width=int(arr.shape[1]),
                height=int(arr.shape[0]),
                synthetic=synthetic,
                original_path=name or "",
                extra=extra_dict,
            )
            return [*rows, row], row

        return self._update_manifest(update)


class LocalDatasetStore(DatasetStore):
    """A dataset version in a local directory; manifest updates under an ``fcntl`` lock."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalDatasetStore({str(self.root)!r})"

    def _read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def _write(self, rel: str, data: bytes) -> None:
        target = self.root / check_relative_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".manifest.lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _update_manifest(self, update: ManifestUpdate[T]) -> T:
        with self._locked():
            new_rows, result = update(self.manifest())
            if new_rows is not None:
                self._write(MANIFEST_NAME, rows_to_csv(new_rows))
            return result


def open_store(
    uri: str | Path, *, endpoint_url: str | None = None, client: Any = None
) -> DatasetStore:
    """``/path``, ``relative/path``, ``file:///path`` or ``s3://bucket/prefix``."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file"):
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ValueError(f"file URI {text!r} must be local (file:///path)")
            return LocalDatasetStore(Path(unquote(parsed.path)))
        return LocalDatasetStore(Path(text))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI {text!r} lacks a bucket: use s3://bucket/prefix")
        from mlcore.ml.data.s3store import S3DatasetStore  # boto3: the optional s3 extra, only for s3:// stores

        return S3DatasetStore(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            client=client,
            endpoint_url=endpoint_url,
        )
    raise ValueError(
        f"unsupported dataset store URI {text!r}; accepted: /path, file:///path, s3://bucket/prefix"
    )
