"""The parts of benchmarks/load.py that decide what it reports: the studies it sends are
accepted by the real ingest (a DX DICOM and a PNG with fresh bytes each time), and its
bookkeeping counts errors inside and outside the fault windows as documented."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from clinical.services.ingest import ingest_prepare
from tests.clinical.factories import chest_png

LOAD = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("benchmarks_load", LOAD)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_each_submission_is_new_bytes_of_the_same_pixels(load):
    png = chest_png(size=(120, 100), seed=3)
    a, b = load.unique_png(png), load.unique_png(png)
    assert a != b
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(a))), np.asarray(Image.open(io.BytesIO(png)).convert("L")))
    for data in (a, b):
        assert ingest_prepare(data=data, filename="c.png").format == "png"


def test_the_dicom_it_sends_is_a_dx_instance_the_ingest_accepts(load):
    png = chest_png(size=(120, 100), seed=4)
    first, second = load.png_to_dicom(png), load.png_to_dicom(png)
    ds = pydicom.dcmread(io.BytesIO(first))
    assert (ds.Modality, ds.Rows, ds.Columns) == ("DX", 100, 120)
    assert ds.StudyInstanceUID != pydicom.dcmread(io.BytesIO(second)).StudyInstanceUID
    result = ingest_prepare(data=first, filename="c.dcm")
    assert result.dicom is not None and result.dicom.original_uids["sop"] == ds.SOPInstanceUID
    body, ctype = load.stow_body(first)
    boundary = ctype.rsplit("boundary=", 1)[1]
    assert body.startswith(f"--{boundary}\r\nContent-Type: application/dicom".encode())
    assert body.endswith(f"--{boundary}--\r\n".encode())


def test_errors_are_counted_apart_inside_the_fault_windows(load):
    results = load.Results()
    S = load.Sample
    results.samples += [
        S("poll", 1.0, 0.01, 200), S("submit_stow", 2.0, 0.2, 200), S("submit_rest_png", 3.0, 0.2, 202),
        S("poll", 11.0, 0.01, 500), S("submit_rest_png", 12.0, 1.0, 0, "ConnectionError"),  # in the window
        S("poll", 30.0, 0.01, 429), S("submit_stow", 31.0, 0.2, 202),  # outside: both wrong
    ]
    report = load.summarise(results, [("redis_restart", 10.0, 20.0)])
    outside, inside = report["outside_fault_windows"], report["inside_fault_windows"]
    assert (outside["requests"], outside["errors"]) == (5, 2)
    assert outside["error_rate"] == pytest.approx(0.4)
    assert (inside["requests"], inside["errors"]) == (2, 2)
    assert report["latency_outside_windows"]["poll"]["n"] == 1  # only answered, expected polls
