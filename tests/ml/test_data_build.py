from __future__ import annotations

import io
import random
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from mlcore.ml.data import (
    Candidate,
    LocalDatasetStore,
    build_dataset,
    scan_covid19_radiography,
    scan_kermany_oct,
    scan_plain_tree,
    scan_tb_cxr,
)
from mlcore.ml.data.dedup import BKTree
from tests.ml.conftest import texture, write_image


def _cand(path, class_key="lung-normal", patient=None, source="test"):
    return Candidate(
        path=path, class_key=class_key, patient_key=patient or path.stem, source=source
    )


def _splits_by_patient(rows):
    out = defaultdict(set)
    for r in rows:
        out[r.patient_key].add(r.split)
    return out


def test_corrupt_files_skipped_with_reason(tmp_path):
    good = write_image(tmp_path / "in" / "good.png", texture(1))
    whole = (tmp_path / "in" / "good.png").read_bytes()
    truncated = tmp_path / "in" / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    empty = tmp_path / "in" / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "in" / "notes.png"
    text.write_text("this is a text file, not a radiograph\n")
    missing = tmp_path / "in" / "gone.png"
    cands = [_cand(p) for p in (good, truncated, empty, text, missing)]

    store = LocalDatasetStore(tmp_path / "out")
    report = build_dataset(cands, store)

    reasons = dict(report.skipped)
    assert set(reasons) == {str(truncated), str(empty), str(text), str(missing)}
    assert "truncated" in reasons[str(truncated)]
    assert "not a recognised image" in reasons[str(empty)]
    assert "not a recognised image" in reasons[str(text)]
    assert reasons[str(missing)] == "file not found"
    assert report.total == 1
    assert [r.original_path for r in store.manifest()] == [str(good)]
    # the builder's figures survive in the store's own report
    assert dict(store.split_report().skipped) == reasons


def test_exact_and_near_duplicates_removed_across_sources(tmp_path):
    base = texture(7)
    a = write_image(tmp_path / "a" / "orig.png", base)
    b = write_image(tmp_path / "b" / "copy.png", base.copy())  # same pixels, other source
    brighter = np.clip(base.astype(int) + 10, 0, 255).astype(np.uint8)
    c = write_image(tmp_path / "c" / "brighter.png", brighter)
    d = write_image(tmp_path / "d" / "reencoded.jpg", base, quality=80)
    other = write_image(tmp_path / "e" / "other.png", texture(8))
    cands = [
        _cand(a, source="s1"),
        _cand(b, source="s2"),
        _cand(c, source="s3"),
        _cand(d, source="s4"),
        _cand(other, source="s5"),
    ]
    report = build_dataset(cands, LocalDatasetStore(tmp_path / "out"))
    assert report.total == 2
    assert (report.exact_duplicates, report.near_duplicates) == (1, 2)
    assert report.duplicates_dropped == 3
    dropped = dict(report.dropped)
    assert dropped[str(b)] == f"exact duplicate of {a}"
    assert dropped[str(c)].startswith(f"near duplicate of {a}")
    assert str(d) in dropped


def test_near_duplicate_threshold_is_configurable(tmp_path):
    base = texture(7)
    a = write_image(tmp_path / "orig.png", base)
    c = write_image(
        tmp_path / "brighter.png", np.clip(base.astype(int) + 10, 0, 255).astype(np.uint8)
    )
    exact_only = build_dataset(
        [_cand(a), _cand(c)], LocalDatasetStore(tmp_path / "x"), near_dup_hamming=None
    )
    assert (exact_only.total, exact_only.duplicates_dropped) == (2, 0)


def test_conflicting_label_duplicates_both_dropped(tmp_path):
    base = texture(9)
    a = write_image(tmp_path / "covid.png", base)
    b = write_image(tmp_path / "normal.jpg", base, quality=90)
    keep = write_image(tmp_path / "keep.png", texture(10))
    cands = [_cand(a, "lung-covid"), _cand(b, "lung-normal"), _cand(keep, "lung-normal")]
    report = build_dataset(cands, LocalDatasetStore(tmp_path / "out"))
    assert report.total == 1
    assert report.conflicting_label_dropped == 2
    reasons = dict(report.dropped)
    assert set(reasons) == {str(a), str(b)}
    assert "conflicting labels" in reasons[str(a)]
    assert "lung-covid" in reasons[str(a)]
    assert "lung-normal" in reasons[str(a)]


def test_images_normalised_to_8bit_gray_and_downscaled(tmp_path):
    wide = texture(3, size=80).astype(np.uint16) * 16  # 12-bit data in a 16-bit PNG
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(wide).save(sixteen)
    rgb = write_image(tmp_path / "rgb.jpg", np.stack([texture(4, size=100)] * 3, axis=-1))
    store = LocalDatasetStore(tmp_path / "out")
    build_dataset([_cand(sixteen), _cand(rgb)], store, max_side=50, fractions={"train": 1})
    by_name = {r.original_path: r for r in store.manifest()}
    arr = store.read_image(by_name[str(sixteen)])
    assert arr.dtype == np.uint8
    assert arr.shape == (50, 50)
    assert (int(arr.min()), int(arr.max())) == (0, 255)  # 12-bit range stretched, not darkened
    assert (by_name[str(rgb)].width, by_name[str(rgb)].height) == (50, 50)
    with Image.open(io.BytesIO(store.read_bytes(by_name[str(rgb)]))) as png:
        assert (png.format, png.mode) == ("PNG", "L")


def _many_patients(tmp_path, n_patients=40):
    cands = []
    seed = 1000
    for p in range(n_patients):
        cls = ["lung-covid", "lung-normal", "lung-opacity"][p % 3]
        for k in range(1 + p % 3):  # 1-3 images per patient
            path = write_image(tmp_path / "src" / f"p{p}-{k}.png", texture(seed))
            seed += 1
            cands.append(_cand(path, cls, patient=f"patient-{p}", source="hospital"))
    return cands


def test_split_by_patient_reproducible_and_final_eval_disjoint(tmp_path):
    cands = _many_patients(tmp_path)
    one, two, other_seed = (LocalDatasetStore(tmp_path / d) for d in ("one", "two", "three"))
    report = build_dataset(cands, one, seed=5)
    build_dataset(list(reversed(cands)), two, seed=5)
    build_dataset(cands, other_seed, seed=6)

    assert report.patients_shared_between_splits == 0
    assert one.manifest_hash() == two.manifest_hash()  # same seed, any input order: same split
    assert one.manifest_hash() != other_seed.manifest_hash()
    rows = one.manifest()
    assert all(len(splits) == 1 for splits in _splits_by_patient(rows).values())
    final_patients = {r.patient_key for r in rows if r.split == "final_eval"}
    other_patients = {r.patient_key for r in rows if r.split != "final_eval"}
    assert final_patients and not final_patients & other_patients
    # keys are namespaced by source so equal IDs from two collections stay two people
    assert all(r.patient_key.startswith("hospital:patient-") for r in rows)
    # every class keeps roughly its share in train (stratified by class)
    for cls in ("lung-covid", "lung-normal", "lung-opacity"):
        n_cls = sum(r.class_key == cls for r in rows)
        n_train = sum(r.class_key == cls and r.split == "train" for r in rows)
        assert 0.5 <= n_train / n_cls <= 0.85


def test_kermany_patient_with_several_images_stays_together(kermany_tree, tmp_path):
    store = LocalDatasetStore(tmp_path / "out")
    report = build_dataset(scan_kermany_oct(kermany_tree), store, seed=3)
    assert report.total == 9
    assert report.patients_shared_between_splits == 0
    rows_1001 = [r for r in store.manifest() if r.patient_key == "kermany-oct2017:1001"]
    assert len(rows_1001) == 4
    assert len({r.split for r in rows_1001}) == 1


def test_all_importers_together(covid_tree, tb_tree, plain_tree, tmp_path):
    cands = (
        scan_covid19_radiography(covid_tree) + scan_tb_cxr(tb_tree) + scan_plain_tree(plain_tree)
    )
    progress = []
    store = LocalDatasetStore(tmp_path / "out")
    report = build_dataset(cands, store, progress=lambda *a: progress.append(a))
    assert report.total == 12 + 6 + 6
    assert report.patients_shared_between_splits == 0
    assert progress[-1] == ("write", 24, 24)
    assert ("decode", 24, 24) in progress
    p1 = [r for r in store.manifest() if r.patient_key == "real-mini:p-1"]
    assert len(p1) == 3 and len({r.split for r in p1}) == 1  # manifest-wide patient namespace
    for r in store.manifest():
        assert (store.root / r.path).is_file()
        assert r.path.startswith(f"{r.split}/{r.class_key}/")
    md = report.to_markdown()
    assert "patients shared between splits: **0**" in md
    assert report.to_dict()["totals"]["train"] == report.totals["train"]


def test_build_refuses_nonempty_store_and_bad_fractions(tmp_path):
    path = write_image(tmp_path / "a.png", texture(1))
    store = LocalDatasetStore(tmp_path / "out")
    build_dataset([_cand(path)], store)
    with pytest.raises(ValueError, match="already holds a dataset version"):
        build_dataset([_cand(path)], store)
    with pytest.raises(ValueError, match="'feedback'"):
        build_dataset([_cand(path)], LocalDatasetStore(tmp_path / "x"), fractions={"feedback": 1})
    with pytest.raises(ValueError, match="unknown class key"):
        build_dataset([_cand(path, "lung-cancer")], LocalDatasetStore(tmp_path / "y"))


def test_bk_tree_matches_brute_force():
    rng = random.Random(0)
    values = [rng.getrandbits(64) for _ in range(300)]
    values += [v ^ (1 << rng.randrange(64)) for v in values[:50]]  # close neighbours
    tree = BKTree()
    for i, v in enumerate(values):
        tree.add(v, i)
    for q in values[::7]:
        expected = sorted(
            (bin(q ^ v).count("1"), i) for i, v in enumerate(values) if bin(q ^ v).count("1") <= 12
        )
        assert sorted(tree.query(q, 12)) == expected
