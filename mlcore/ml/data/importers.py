"""Scanners for the public data set layouts; they list candidates, ``build_dataset`` imports.

Scanners only look at names (folders, file names, a manifest): decoding, duplicate removal
and splitting happen once, in the builder, across all sources together. Unknown folders are
refused rather than guessed, because a silently mis-mapped folder is a mislabelled class.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcore.ml.classes import CLASS_KEYS

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

COVID19_RADIOGRAPHY_FOLDERS: dict[str, str] = {
    "COVID": "lung-covid",
    "Lung_Opacity": "lung-opacity",
    "Normal": "lung-normal",
    "Viral Pneumonia": "lung-viral-pneumonia",
}
TB_CXR_FOLDERS: dict[str, str] = {"Normal": "lung-normal", "Tuberculosis": "lung-tuberculosis"}
KERMANY_OCT_SPLITS = ("train", "test", "val")
KERMANY_OCT_FOLDERS: dict[str, str] = {
    "CNV": "lung-oct-cnv",
    "DME": "lung-oct-dme",
    "DRUSEN": "lung-oct-drusen",
    "NORMAL": "lung-oct-normal",
}
_KERMANY_NAME = re.compile(r"^(CNV|DME|DRUSEN|NORMAL)-(\d+)-(\d+)$")
# real-cxr appends notes such as "[patient_id inferred by ...]" to the data set name
_SOURCE_NOTE = re.compile(r"\s*\[(.*)\]\s*$")


@dataclass(frozen=True)
class Candidate:
    """An image file proposed for import.

    ``patient_key`` is the key within its namespace; the builder stores
    ``<patient_namespace or source>:<patient_key>``. A manifest whose patient IDs span several
    sources (real-cxr) sets ``patient_namespace`` so one person stays one group.
    """

    path: Path
    class_key: str
    patient_key: str
    source: str
    patient_namespace: str | None = None
    synthetic: bool = False
    original_path: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):  # accept str paths from callers
            object.__setattr__(self, "path", Path(self.path))


def _dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _require_dir(root: Path | str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data set root {str(root)!r} is not a directory")
    return root


def _refuse_unknown(found: list[Path], accepted: Mapping[str, str] | tuple[str, ...], where: Path):
    unknown = [p.name for p in found if p.name not in accepted]
    if unknown:
        raise ValueError(
            f"unknown folder(s) {', '.join(repr(u) for u in unknown)} in {str(where)!r}; "
            f"accepted: {', '.join(repr(a) for a in accepted)}"
        )


def _class_folder_images(folder: Path) -> list[Path]:
    """``<class>/images/*`` (masks ignored) or, in older releases, ``<class>/*``."""
    subdirs = _dirs(folder)
    _refuse_unknown(subdirs, ("images", "masks"), folder)
    images_dir = folder / "images"
    return _images(images_dir) if images_dir.is_dir() else _images(folder)


def _scan_class_folders(root: Path | str, folders_to_keys: dict[str, str], *, source: str) -> list[Candidate]:
    """One folder per class, no patient IDs: each image is its own group (the builder's
    duplicate check is what keeps copies of one film out of two splits)."""
    root = _require_dir(root)
    folders = _dirs(root)
    _refuse_unknown(folders, folders_to_keys, root)
    return [
        Candidate(path=img, class_key=folders_to_keys[folder.name], patient_key=f"img:{img.stem}", source=source)
        for folder in folders
        for img in _class_folder_images(folder)
    ]


def scan_covid19_radiography(root: Path | str) -> list[Candidate]:
    """COVID-19 Radiography Database: ``COVID/``, ``Lung_Opacity/``, ``Normal/``,
    ``Viral Pneumonia/`` each with ``images/`` (and ``masks/``, ignored).

    It has no patient IDs, so each image is its own group; the duplicate check in the builder
    is what keeps copies of one film out of two splits.
    """
    return _scan_class_folders(root, COVID19_RADIOGRAPHY_FOLDERS, source="covid19-radiography")


def scan_tb_cxr(root: Path | str) -> list[Candidate]:
    """TB Chest X-ray Database: ``Normal/Normal-12.png``, ``Tuberculosis/Tuberculosis-3.png``."""
    return _scan_class_folders(root, TB_CXR_FOLDERS, source="tb-cxr")


def scan_kermany_oct(root: Path | str) -> list[Candidate]:
    """Kermany OCT2017: ``train|test|val/{CNV,DME,DRUSEN,NORMAL}/CNV-<patient>-<n>.jpeg``.

    The published train/test/val split is ignored (the builder re-splits by patient); the
    patient number in the file name groups a patient's scans across classes and folders.
    """
    root = _require_dir(root)
    splits = _dirs(root)
    _refuse_unknown(splits, KERMANY_OCT_SPLITS, root)
    out = []
    for split_dir in splits:
        folders = _dirs(split_dir)
        _refuse_unknown(folders, KERMANY_OCT_FOLDERS, split_dir)
        for folder in folders:
            for img in _images(folder):
                m = _KERMANY_NAME.match(img.stem)
                patient = m.group(2) if m else f"img:{split_dir.name}/{img.stem}"
                out.append(
                    Candidate(
                        path=img,
                        class_key=KERMANY_OCT_FOLDERS[folder.name],
                        patient_key=patient,
                        source="kermany-oct2017",
                    )
                )
    return out


def _read_plain_manifest(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        needed = ("file", "class")
        missing = [c for c in needed if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(
                f"{str(path)!r} lacks the column(s) {', '.join(missing)}; expected at least "
                "file, class (and optionally patient_id, original_dataset)"
            )
        return {rec["file"].strip().replace("\\", "/"): rec for rec in reader}


def scan_plain_tree(
    root: Path | str,
    *,
    manifest_csv: Path | str | None = None,
    source: str | None = None,
) -> list[Candidate]:
    """``<class-key>/<image>``, optionally described by a manifest CSV.

    The manifest (``root/manifest.csv`` when present, or ``manifest_csv``) has columns
    ``file,class,patient_id,original_dataset,...``. Patient IDs are one namespace for the
    whole manifest (``patient_namespace`` = the tree's name), because the same person can come
    through several collections; rows without an ID are their own group. ``source`` is
    ``original_dataset`` (a trailing ``[...]`` note moves to ``extra``), else ``source`` or
    the folder name. Files listed but absent become candidates that the builder reports.
    """
    root = _require_dir(root)
    folders = _dirs(root)
    _refuse_unknown(folders, CLASS_KEYS, root)
    default_source = source or root.name
    manifest_path = Path(manifest_csv) if manifest_csv else root / "manifest.csv"
    listed = _read_plain_manifest(manifest_path) if manifest_path.is_file() else {}
    if manifest_csv and not manifest_path.is_file():
        raise ValueError(f"manifest_csv {str(manifest_path)!r} does not exist")

    on_disk = {f"{folder.name}/{img.name}": img for folder in folders for img in _images(folder)}
    out = []
    for rel in sorted(set(on_disk) | set(listed)):
        rec = listed.get(rel)
        folder_class = rel.split("/", 1)[0] if "/" in rel else ""
        if rec is not None:
            class_key = rec["class"].strip()
            if folder_class and class_key != folder_class:
                raise ValueError(
                    f"{str(manifest_path)!r}: {rel!r} is labelled {class_key!r} but lies in the "
                    f"folder {folder_class!r}"
                )
            if class_key not in CLASS_KEYS:
                raise ValueError(
                    f"{str(manifest_path)!r}: {rel!r} has unknown class {class_key!r}; "
                    f"accepted: {', '.join(CLASS_KEYS)}"
                )
        else:
            class_key = folder_class
        out.append(_plain_candidate(root, rel, class_key, rec, default_source))
    return out


def _plain_candidate(
    root: Path, rel: str, class_key: str, rec: Mapping[str, str] | None, default_source: str
) -> Candidate:
    rec = rec or {}
    extra: dict[str, Any] = {
        k: v
        for k, v in rec.items()
        if k not in ("file", "class", "patient_id", "original_dataset") and v
    }
    src = (rec.get("original_dataset") or "").strip()
    note = _SOURCE_NOTE.search(src)
    if note:
        extra["source_note"] = note.group(1)
        src = src[: note.start()].strip()
    patient_id = (rec.get("patient_id") or "").strip()
    return Candidate(
        path=root / rel,
        class_key=class_key,
        patient_key=patient_id or f"img:{rel}",
        source=src or default_source,
        patient_namespace=root.name,
        original_path=rel,
        extra=extra,
    )
