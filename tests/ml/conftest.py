"""Fixtures that build small data trees with the real public file-naming conventions."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def texture(seed: int, size: int = 64, cells: int = 12) -> np.ndarray:
    """A distinct uint8 image per seed: random cells, smoothly upsampled.

    Different seeds are ~120 dHash bits apart, far beyond the near-duplicate threshold, while
    brightening or re-encoding one moves it by a few bits only.
    """
    rng = np.random.default_rng(seed)
    cells_img = Image.fromarray(rng.integers(0, 256, (cells, cells)).astype(np.uint8))
    return np.asarray(cells_img.resize((size, size), Image.Resampling.BICUBIC))


def write_image(path: Path, arr: np.ndarray, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **save_kwargs)
    return path


@pytest.fixture
def covid_tree(tmp_path: Path) -> Path:
    """COVID-19 Radiography Database: ``<Class>/images/<Class>-<n>.png`` (+ masks, metadata)."""
    root = tmp_path / "COVID-19_Radiography_Dataset"
    seed = 100
    for folder in ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"):
        for n in range(1, 4):
            write_image(root / folder / "images" / f"{folder}-{n}.png", texture(seed))
            write_image(root / folder / "masks" / f"{folder}-{n}.png", texture(seed + 1))
            seed += 2
    (root / "COVID.metadata.xlsx").write_bytes(b"not read")
    (root / "README.md.txt").write_text("readme")
    return root


@pytest.fixture
def tb_tree(tmp_path: Path) -> Path:
    """TB Chest X-ray Database: ``Normal/Normal-<n>.png``, ``Tuberculosis/Tuberculosis-<n>.png``."""
    root = tmp_path / "TB_Chest_Radiography_Database"
    for i, folder in enumerate(("Normal", "Tuberculosis")):
        for n in range(1, 4):
            write_image(root / folder / f"{folder}-{n}.png", texture(200 + 10 * i + n))
    return root


@pytest.fixture
def kermany_tree(tmp_path: Path) -> Path:
    """Kermany OCT2017: ``train|test|val/<CLASS>/<CLASS>-<patient>-<n>.jpeg``.

    Patient 1001 has three CNV scans and one DME scan spread over train and test folders;
    the builder must keep all four in one split.
    """
    root = tmp_path / "OCT2017"
    files = [
        ("train", "CNV", 1001, 1),
        ("train", "CNV", 1001, 2),
        ("test", "CNV", 1001, 3),
        ("train", "DME", 1001, 1),
        ("train", "DME", 2002, 1),
        ("val", "DRUSEN", 3003, 1),
        ("train", "DRUSEN", 3004, 1),
        ("test", "NORMAL", 4004, 1),
        ("train", "NORMAL", 4005, 1),
    ]
    for i, (split, cls, patient, n) in enumerate(files):
        path = root / split / cls / f"{cls}-{patient}-{n}.jpeg"
        write_image(path, texture(300 + i), quality=95)
    return root


@pytest.fixture
def plain_tree(tmp_path: Path) -> Path:
    """``<class-key>/<image>`` with a real-cxr style ``manifest.csv``."""
    root = tmp_path / "real-mini"
    records = [
        ("lung-covid/a1.png", "lung-covid", "p-1", "Collection A"),
        ("lung-covid/a2.png", "lung-covid", "p-1", "Collection A [patient_id inferred by dHash]"),
        ("lung-normal/b1.png", "lung-normal", "p-1", "Collection B"),
        ("lung-normal/b2.png", "lung-normal", "", "Collection B"),
        ("lung-opacity/c1.png", "lung-opacity", "", "Collection C"),
    ]
    for i, (rel, *_rest) in enumerate(records):
        write_image(root / rel, texture(400 + i))
    write_image(root / "lung-opacity" / "unlisted.png", texture(499))
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["file", "class", "source_repo", "patient_id", "original_dataset", "license_note"]
        )
        for rel, cls, pid, ds in records:
            w.writerow([rel, cls, "someone/repo", pid, ds, "CC BY 4.0"])
    return root


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto's standalone server) on a random loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
