"""Real images through a running RadViewer, as PNG and as 8-bit DICOM: same triage?

Issue 9's acceptance check, scripted. Takes ``--per-class`` images of every class from the
``test`` split of a real-cxr dataset store (images the model never trained on), submits
each twice through the REST API -- the stored PNG, and an uncompressed 8-bit DICOM of the
same pixels (DX + body part CHEST for chest classes, OPT for retinal ones, no window, as a
plain converter writes it) -- waits for both triages and prints, per image: the top class,
the scope and its source, the out-of-scope flag, and the largest probability difference
between the two formats.

    python benchmarks/real_uploads.py --base http://127.0.0.1:8000 --token $TOKEN \
        --store var/datasets/real-cxr --per-class 3

The token needs the ``submit`` and ``read`` scopes (``manage.py create_api_client --name
check --scopes submit,read``). Exit status 1 if any pair differs by more than 1e-6, a
chest film gets a retinal class (or the reverse), or a triage fails. A study drawn for a
blinded read (3 % of new studies by default) shows no AI result to integrations: its pair is
listed and not compared; set the blinded share to 0 % on the ML console for a complete check.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
OPT_SOP = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image Storage


def as_dicom(pixels: np.ndarray, *, oct_scan: bool) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OPT_SOP if oct_scan else DX_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OPT" if oct_scan else "DX"
    if not oct_scan:
        ds.BodyPartExamined = "CHEST"
    ds.PatientID, ds.PatientName = "CHECK-0001", "Check^Real^Uploads"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def submit(base: str, token: str, name: str, body: bytes) -> str:
    answer = requests.post(f"{base}/api/v1/studies/", headers={"Authorization": f"Bearer {token}"},
                           files={"files": (name, body)}, timeout=60)
    if answer.status_code != 202:
        raise SystemExit(f"{name}: {answer.status_code} {answer.text[:300]}")
    return answer.json()["uid"]


def prediction(base: str, token: str, uid: str, *, timeout_s: float = 120) -> dict:
    """The study's first prediction once finished; ``{"status": "withheld"}`` for a blinded
    read (the AI is hidden from every integration until a reader's verdict)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        study = requests.get(f"{base}/api/v1/studies/{uid}/", headers={"Authorization": f"Bearer {token}"},
                             timeout=30).json()
        if study.get("ai_withheld"):
            return {"status": "withheld"}
        found = (study.get("images") or [{}])[0].get("prediction") or {}
        if found.get("status") in ("succeeded", "failed"):
            return found
        time.sleep(0.3)
    raise SystemExit(f"{uid}: no result within {timeout_s} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--store", type=Path, default=Path("var/datasets/real-cxr"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-class", type=int, default=3)
    args = parser.parse_args()

    with (args.store / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == args.split]
    chosen: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["path"]):
        picked = chosen.setdefault(row["class_key"], [])
        if len(picked) < args.per_class:
            picked.append(row)

    problems = withheld = 0
    print(f"{'class':24} {'file':44} {'PNG top class':28} {'scope':14} {'OOD':5} {'DICOM top class':28} max|dp|")
    for key, picked in sorted(chosen.items()):
        oct_scan = "-oct-" in key
        for row in picked:
            path = args.store / row["path"]
            pixels = np.asarray(Image.open(path).convert("L"))
            png = prediction(args.base, args.token, submit(args.base, args.token, path.name, path.read_bytes()))
            dcm = prediction(args.base, args.token, submit(args.base, args.token, path.stem + ".dcm",
                                                           as_dicom(pixels, oct_scan=oct_scan)))
            if "withheld" in (png["status"], dcm["status"]):
                # A share of new studies is read blinded (the console's blinded-read policy):
                # no integration sees their AI until a reader's verdict. Not a fault; the pair
                # cannot be compared (set the share to 0 % for a complete check).
                print(f"{key:24} {path.name[:44]:44} blinded read drawn: AI withheld, pair not compared")
                withheld += 1
                continue
            if png["status"] != "succeeded" or dcm["status"] != "succeeded":
                print(f"{key:24} {path.name[:44]:44} failed: {png['failure_reason'] or dcm['failure_reason']}")
                problems += 1
                continue
            keys = set(png["probabilities"]) | set(dcm["probabilities"])
            diff = max(abs(png["probabilities"].get(k, 0.0) - dcm["probabilities"].get(k, 0.0)) for k in keys)
            wrong_scope = any(p["top_class"] and (("-oct-" in p["top_class"]) != oct_scan) for p in (png, dcm))
            problems += diff > 1e-6 or wrong_scope
            top = f"{png['top_class_display'] or '(undecided)'} {png['confidence'] or 0:.2f}"
            scope = f"{png['scope'] or '-'}/{png['scope_source'] or '-'}"
            print(f"{key:24} {path.name[:44]:44} {top:28} {scope:14} {'yes' if png['out_of_scope'] else 'no':5} "
                  f"{(dcm['top_class_display'] or '(undecided)')[:28]:28} {diff:.1e}"
                  f"{'  <- wrong scope' if wrong_scope else ''}")
    print(f"{problems} problem(s); {withheld} pair(s) not compared (blinded reads)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
