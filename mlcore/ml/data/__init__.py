"""Dataset versions: stores (local, S3), importers, builder, synthetic phantoms, guards.

Pure Python + Pillow + numpy (boto3 only for S3): no Django here, so training on a bare GPU
box or a Ray worker reads the same data the web app wrote.
"""

from mlcore.ml.data.build import build_dataset
from mlcore.ml.data.guards import check_trainable
from mlcore.ml.data.imaging import ImageDecodeError, decode_gray, dhash_hex, pixel_sha256
from mlcore.ml.data.importers import (
    Candidate,
    scan_covid19_radiography,
    scan_kermany_oct,
    scan_plain_tree,
    scan_tb_cxr,
)
from mlcore.ml.data.manifest import MANIFEST_COLUMNS, SPLITS, ManifestRow
from mlcore.ml.data.report import SplitReport
from mlcore.ml.data.s3store import S3DatasetStore
from mlcore.ml.data.store import DatasetStore, LocalDatasetStore, open_store
from mlcore.ml.data.synthetic import generate_phantom, make_synthetic_dataset

__all__ = [
    "MANIFEST_COLUMNS",
    "SPLITS",
    "Candidate",
    "DatasetStore",
    "ImageDecodeError",
    "LocalDatasetStore",
    "ManifestRow",
    "S3DatasetStore",
    "SplitReport",
    "build_dataset",
    "check_trainable",
    "decode_gray",
    "dhash_hex",
    "generate_phantom",
    "make_synthetic_dataset",
    "open_store",
    "pixel_sha256",
    "scan_covid19_radiography",
    "scan_kermany_oct",
    "scan_plain_tree",
    "scan_tb_cxr",
]
