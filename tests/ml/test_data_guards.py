from __future__ import annotations

import pytest

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data import LocalDatasetStore, check_trainable, make_synthetic_dataset

CXR = ("lung-covid", "lung-normal", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")
OCT = tuple(k for k in CLASS_KEYS if k not in CXR)


@pytest.fixture
def cxr_only(tmp_path):
    store = LocalDatasetStore(tmp_path)
    make_synthetic_dataset(
        store, per_class=4, size=24, classes=CXR, fractions={"train": 0.7, "val": 0.3}
    )
    return store


def test_missing_classes_listed(cxr_only):
    with pytest.raises(ValueError, match="without train images: " + ", ".join(OCT)):
        check_trainable(cxr_only)
    check_trainable(cxr_only, allowed_empty_classes=OCT)  # deliberate: a CXR-only demo
    check_trainable(cxr_only, classes=CXR)


def test_empty_splits_listed(cxr_only):
    with pytest.raises(ValueError, match=r"empty split\(s\): test, final_eval") as exc:
        check_trainable(
            cxr_only, splits=("train", "val", "test", "final_eval"), allowed_empty_classes=OCT
        )
    assert "without train images" not in str(exc.value)


def test_empty_store_names_everything(tmp_path):
    with pytest.raises(
        ValueError, match=r"empty split\(s\): train, val; class\(es\) without train images"
    ):
        check_trainable(LocalDatasetStore(tmp_path))
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        check_trainable(LocalDatasetStore(tmp_path), splits=("holdout",))
