from __future__ import annotations

import csv

import numpy as np
import pytest

from mlcore.ml.classes import CLASS_KEYS, modality_of
from mlcore.ml.data import LocalDatasetStore, generate_phantom, make_synthetic_dataset


def test_phantom_shape_type_and_reproducibility():
    for key in CLASS_KEYS:
        a = generate_phantom(key, size=48, rng=np.random.default_rng(3))
        b = generate_phantom(key, size=48, rng=np.random.default_rng(3))
        c = generate_phantom(key, size=48, rng=np.random.default_rng(4))
        assert a.dtype == np.uint8
        assert a.shape == (48, 48)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)  # random variation, not one memorisable image
        assert a.std() > 20  # structure, not a flat field
    with pytest.raises(ValueError, match="unknown class key"):
        generate_phantom("lung-cancer", rng=np.random.default_rng(0))


def _normal_of(key: str) -> str:
    return "lung-normal" if modality_of(key) == "cxr" else "lung-oct-normal"


def _phantom(key: str, seed: int, size: int = 64) -> np.ndarray:
    return generate_phantom(key, size=size, rng=np.random.default_rng(seed)).astype(np.float32)


def test_per_class_mean_images_differ():
    """Mean images over the same seeds (same anatomy and noise) differ for every class pair,
    somewhere by more than 8 grey levels on average over an 8x8 block."""
    means = {k: np.mean([_phantom(k, s) for s in range(12)], axis=0) for k in CLASS_KEYS}
    for i, a in enumerate(CLASS_KEYS):
        for b in CLASS_KEYS[i + 1 :]:
            blocks = np.abs(means[a] - means[b]).reshape(8, 8, 8, 8).mean(axis=(1, 3))
            assert blocks.max() > 8, (a, b, blocks.max())


@pytest.mark.parametrize("seed", range(5))
def test_paired_phantom_shows_the_class_finding_where_it_belongs(seed):
    """Same generator state: the difference to the normal phantom is the finding alone."""
    assert np.array_equal(_phantom("lung-normal", seed), _phantom("lung-normal", seed))
    diff = {k: _phantom(k, seed) - _phantom(_normal_of(k), seed) for k in CLASS_KEYS}
    assert not diff["lung-normal"].any() and not diff["lung-oct-normal"].any()
    changed = {k: np.abs(d) > 30 for k, d in diff.items()}
    for key in CLASS_KEYS:
        if key not in ("lung-normal", "lung-oct-normal"):
            assert changed[key].mean() > 0.005, key  # a visible finding in every image

    def halves(key):
        m = changed[key]
        return m[:, :32].sum(), m[:, 32:].sum()

    covid_l, covid_r = halves("lung-covid")
    assert min(covid_l, covid_r) >= 10  # bilateral
    assert changed["lung-covid"][32:].sum() > changed["lung-covid"][:32].sum()  # lower zones
    opac_l, opac_r = halves("lung-opacity")
    assert min(opac_l, opac_r) <= 0.05 * max(opac_l, opac_r)  # one lobe, one side
    tb = changed["lung-tuberculosis"]
    assert tb[:32].sum() >= 0.9 * tb.sum()  # upper lobes
    viral_l, viral_r = halves("lung-viral-pneumonia")
    assert min(viral_l, viral_r) >= 10  # both hila
    assert (diff["lung-oct-dme"] < -30).sum() >= 20  # dark cystic pockets


def test_make_synthetic_dataset_marks_synthetic_and_splits_by_patient(tmp_path):
    store = LocalDatasetStore(tmp_path)
    report = make_synthetic_dataset(store, per_class=6, size=32, seed=1)
    rows = store.manifest()
    assert len(rows) == 6 * len(CLASS_KEYS) == report.total == report.synthetic_images
    assert all(r.synthetic and r.source == "synthetic" for r in rows)
    assert all(r.patient_key.startswith("synthetic:synth-") for r in rows)
    assert report.patients_shared_between_splits == 0
    with open(tmp_path / "manifest.csv", newline="") as fh:
        assert {rec["synthetic"] for rec in csv.DictReader(fh)} == {"1"}
    assert report.counts["train"]["lung-covid"] >= 3
    again = LocalDatasetStore(tmp_path / "again")
    make_synthetic_dataset(again, per_class=6, size=32, seed=1)
    assert again.manifest_hash() == store.manifest_hash()
    assert store.read_image(rows[0]).shape == (32, 32)
