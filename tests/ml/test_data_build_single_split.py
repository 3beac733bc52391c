"""Evaluation-only builds: every kept image in one split, still de-duplicated."""

from __future__ import annotations

import pytest

from mlcore.ml.data import Candidate, LocalDatasetStore, build_dataset
from tests.ml.conftest import texture, write_image


def _cands(tmp_path, n=8):
    out = []
    for i in range(n):
        cls = ("lung-normal", "lung-covid")[i % 2]
        path = write_image(tmp_path / "in" / cls / f"img{i}.png", texture(700 + i))
        # two images per patient: a patient split would spread patients over train/val/test
        out.append(Candidate(path=path, class_key=cls, patient_key=f"p{i // 2}", source="hospital"))
    return out


def test_single_split_puts_every_image_in_final_eval(tmp_path):
    cands = _cands(tmp_path)
    copy = write_image(tmp_path / "in" / "lung-normal" / "copy.png", texture(700))
    cands.append(Candidate(path=copy, class_key="lung-normal", patient_key="p9", source="hospital"))
    store = LocalDatasetStore(tmp_path / "out")

    report = build_dataset(cands, store, single_split="final_eval")

    rows = store.manifest()
    assert len(rows) == 8 and {r.split for r in rows} == {"final_eval"}
    assert report.totals == {"train": 0, "val": 0, "test": 0, "final_eval": 8, "feedback": 0}
    assert report.exact_duplicates == 1  # de-duplication still runs
    assert all(r.path.startswith("final_eval/") for r in rows)


def test_default_build_uses_several_splits(tmp_path):
    # the contrast that makes the test above mean something
    store = LocalDatasetStore(tmp_path / "out")
    build_dataset(_cands(tmp_path, n=20), store)
    assert len({r.split for r in store.manifest()}) > 1


@pytest.mark.parametrize("bad", ["feedback", "holdout"])
def test_single_split_refuses_feedback_and_unknown(tmp_path, bad):
    store = LocalDatasetStore(tmp_path / "out")
    with pytest.raises(ValueError, match="single_split"):
        build_dataset(_cands(tmp_path, n=2), store, single_split=bad)
    assert store.manifest() == []


def test_single_split_excludes_fractions(tmp_path):
    store = LocalDatasetStore(tmp_path / "out")
    with pytest.raises(ValueError, match="exclude"):
        build_dataset(_cands(tmp_path, n=2), store, single_split="final_eval",
                      fractions={"train": 1.0})
    assert store.manifest() == []
