from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from mlcore.ml.data import (
    LocalDatasetStore,
    ManifestRow,
    S3DatasetStore,
    build_dataset,
    open_store,
    scan_tb_cxr,
)
from tests.ml.conftest import texture


def _png(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=kwargs.pop("format", "PNG"), **kwargs)
    return buf.getvalue()


LINEAGE = {
    "study": "1.2.826.0.1.3680043.8.498.1",
    "image_sha256": "ab" * 32,
    "reader": "dr_house",
    "model_version": "7",
    "time": "2026-11-26T10:00:00Z",
}


def _add(store, seed=1, **kw):
    args = {
        "split": "feedback",
        "class_key": "lung-covid",
        "data": _png(texture(seed)),
        "patient_key": "pseudo-42",
        "source": "radviewer",
        "name": "study 1.png",
        "extra": LINEAGE,
    }
    args.update(kw)
    return store.add_sample(**args)


def test_add_sample_idempotent_with_lineage(tmp_path):
    store = LocalDatasetStore(tmp_path)
    row = _add(store)
    assert row.path.startswith("feedback/lung-covid/study_1__")
    assert row.patient_key == "radviewer:pseudo-42"
    assert row.extra == LINEAGE
    hash_after_first = store.manifest_hash()
    # a retried task (same pixels, same split and class) gets the same row back, no new file
    assert _add(store) == row
    assert _add(store, name="other name.png") == row
    assert store.manifest_hash() == hash_after_first
    assert len(list((tmp_path / "feedback" / "lung-covid").iterdir())) == 1
    # the same pixels encoded differently are still the same image
    reencoded = _png(store.read_image(row), compress_level=1)
    assert reencoded != _png(texture(1))
    assert _add(store, data=reencoded) == row
    # a different label is a different sample
    other = _add(store, class_key="lung-normal")
    assert other.class_key == "lung-normal"
    assert store.manifest() == [row, other]
    assert store.manifest_hash() != hash_after_first
    assert (
        store.manifest_hash()
        == hashlib.sha256((tmp_path / "manifest.csv").read_bytes()).hexdigest()
    )
    assert store.rows("feedback", class_key="lung-normal") == [other]
    assert store.split_report().counts["feedback"] == {"lung-covid": 1, "lung-normal": 1}


def test_add_sample_refuses_bad_input(tmp_path):
    store = LocalDatasetStore(tmp_path)
    with pytest.raises(ValueError, match="unusable image data"):
        _add(store, data=b"%PDF-1.4 not an image")
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        _add(store, split="holdout")
    with pytest.raises(ValueError, match="unknown class key 'lung-cancer'"):
        _add(store, class_key="lung-cancer")
    assert store.manifest() == []


def test_add_sample_stores_pixels_as_8bit_png_without_metadata(tmp_path):
    store = LocalDatasetStore(tmp_path)
    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", "DOE^JANE")
    tagged = _png(texture(2), pnginfo=info)
    assert b"DOE^JANE" in tagged
    row = _add(store, data=tagged)
    stored = store.read_bytes(row.path)
    assert b"DOE^JANE" not in stored
    assert np.array_equal(store.read_image(row), texture(2))
    rgb = _png(np.stack([texture(3)] * 3, axis=-1))
    row_rgb = _add(store, data=rgb)
    with Image.open(io.BytesIO(store.read_bytes(row_rgb))) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "L", (64, 64))


def test_concurrent_add_sample_loses_no_row(tmp_path):
    store = LocalDatasetStore(tmp_path)
    errors = []

    def worker(seed):
        try:
            _add(LocalDatasetStore(tmp_path), seed=seed, name=f"s{seed}.png")
        except Exception as exc:  # pragma: no cover - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.manifest()) == 12


def test_paths_must_stay_inside_the_store(tmp_path):
    store = LocalDatasetStore(tmp_path / "store")
    (tmp_path / "secret.txt").write_text("x")
    for bad in ("../secret.txt", "/etc/passwd", "train/../../secret.txt"):
        with pytest.raises(ValueError, match="must be relative"):
            store.read_bytes(bad)


def test_split_report_detects_patient_leak(tmp_path):
    store = LocalDatasetStore(tmp_path)
    row = _add(store, split="train")
    leaked = replace(row, path="test/lung-covid/x.png", split="test")
    store.write_manifest([row, leaked])
    report = store.split_report()
    assert report.patients_shared_between_splits == 1
    assert report.shared_patients == ["radviewer:pseudo-42"]


def test_manifest_validation(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,class_key\ntrain/lung-covid/a.png,lung-covid\n")
    with pytest.raises(ValueError, match="lacks the columns split"):
        LocalDatasetStore(tmp_path).manifest()
    with pytest.raises(ValueError, match="must be 'train/lung-covid/<name>'"):
        ManifestRow(
            path="val/lung-covid/a.png",
            class_key="lung-covid",
            split="train",
            patient_key="p",
            source="s",
            sha256="0" * 64,
            phash="0" * 64,
            width=1,
            height=1,
        )


def test_open_store_uris(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalDatasetStore)
    assert open_store(tmp_path.as_uri()).root == tmp_path.resolve()
    s3 = open_store("s3://bucket-x/datasets/v3/")
    assert isinstance(s3, S3DatasetStore)
    assert (s3.bucket, s3.prefix, s3.uri) == (
        "bucket-x",
        "datasets/v3",
        "s3://bucket-x/datasets/v3",
    )
    with pytest.raises(ValueError, match="accepted: /path, file:///path, s3://bucket/prefix"):
        open_store("gs://bucket/x")


def test_s3_store_round_trip(s3_client, s3_endpoint, tb_tree, tmp_path):
    s3_client.create_bucket(Bucket="radviewer-data")
    store = open_store("s3://radviewer-data/versions/v1", endpoint_url=s3_endpoint)
    report = build_dataset(scan_tb_cxr(tb_tree), store, fractions={"train": 0.5, "val": 0.5})
    assert report.total == 6
    local = LocalDatasetStore(tmp_path / "local")
    build_dataset(scan_tb_cxr(tb_tree), local, fractions={"train": 0.5, "val": 0.5})

    rows = store.manifest()
    assert rows == local.manifest()
    assert store.manifest_hash() == local.manifest_hash()
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket="radviewer-data")["Contents"]}
    assert "versions/v1/manifest.csv" in keys
    assert {f"versions/v1/{r.path}" for r in rows} <= keys
    for r in rows:
        assert np.array_equal(store.read_image(r), local.read_image(r))
    assert store.split_report().to_dict() == local.split_report().to_dict()

    row = _add(store)
    assert _add(store) == row
    assert store.rows("feedback") == [row]
    with pytest.raises(FileNotFoundError):
        store.read_bytes("train/lung-normal/nope.png")


def test_s3_concurrent_add_sample_compare_and_swap(s3_client, s3_endpoint):
    s3_client.create_bucket(Bucket="radviewer-cas")
    errors = []

    def worker(seed):
        try:
            store = S3DatasetStore(bucket="radviewer-cas", prefix="v", endpoint_url=s3_endpoint)
            _add(store, seed=seed, name=f"s{seed}.png")
        except Exception as exc:  # pragma: no cover - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = S3DatasetStore(bucket="radviewer-cas", prefix="v", endpoint_url=s3_endpoint)
    assert len(store.manifest()) == 6
