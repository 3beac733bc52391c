from __future__ import annotations

import pytest

from mlcore.ml.data import (
    scan_covid19_radiography,
    scan_kermany_oct,
    scan_plain_tree,
    scan_tb_cxr,
)
from tests.ml.conftest import texture, write_image


def test_covid19_radiography_maps_folders_and_ignores_masks(covid_tree):
    cands = scan_covid19_radiography(covid_tree)
    assert len(cands) == 12
    assert all(c.path.parent.name == "images" for c in cands)
    by_name = {c.path.name: c for c in cands}
    assert by_name["COVID-1.png"].class_key == "lung-covid"
    assert by_name["Lung_Opacity-2.png"].class_key == "lung-opacity"
    assert by_name["Normal-3.png"].class_key == "lung-normal"
    assert by_name["Viral Pneumonia-1.png"].class_key == "lung-viral-pneumonia"
    # no patient IDs in this data set: every image is its own group
    assert len({c.patient_key for c in cands}) == 12
    assert {c.source for c in cands} == {"covid19-radiography"}


def test_covid19_radiography_without_images_subfolder(tmp_path):
    write_image(tmp_path / "COVID" / "COVID-9.png", texture(1))
    (cand,) = scan_covid19_radiography(tmp_path)
    assert (cand.class_key, cand.path.name) == ("lung-covid", "COVID-9.png")


def test_tb_cxr(tb_tree):
    cands = scan_tb_cxr(tb_tree)
    assert sorted((c.path.name, c.class_key) for c in cands)[:1] == [
        ("Normal-1.png", "lung-normal")
    ]
    assert sum(c.class_key == "lung-tuberculosis" for c in cands) == 3
    assert {c.source for c in cands} == {"tb-cxr"}


def test_kermany_patient_key_from_file_name(kermany_tree):
    cands = scan_kermany_oct(kermany_tree)
    assert len(cands) == 9
    patient_1001 = [c for c in cands if c.patient_key == "1001"]
    # one patient across classes (CNV, DME) and across the published train/test folders
    assert {c.class_key for c in patient_1001} == {"lung-oct-cnv", "lung-oct-dme"}
    assert len(patient_1001) == 4
    drusen = [c for c in cands if c.class_key == "lung-oct-drusen"]
    assert {c.patient_key for c in drusen} == {"3003", "3004"}


@pytest.mark.parametrize(
    ("scanner", "folder", "accepted"),
    [
        (scan_covid19_radiography, "Pneumonia", "Viral Pneumonia"),
        (scan_tb_cxr, "TB", "Tuberculosis"),
        (scan_plain_tree, "lung-cancer", "lung-oct-drusen"),
    ],
)
def test_unknown_class_folder_refused_listing_accepted(tmp_path, scanner, folder, accepted):
    write_image(tmp_path / folder / "x.png", texture(1))
    with pytest.raises(ValueError, match=folder) as exc:
        scanner(tmp_path)
    assert accepted in str(exc.value)


def test_kermany_unknown_split_or_class_refused(kermany_tree):
    write_image(kermany_tree / "train" / "AMD" / "AMD-1-1.jpeg", texture(1))
    with pytest.raises(ValueError, match=r"'AMD'.*accepted: 'CNV', 'DME', 'DRUSEN', 'NORMAL'"):
        scan_kermany_oct(kermany_tree)
    (kermany_tree / "train" / "AMD" / "AMD-1-1.jpeg").unlink()
    (kermany_tree / "train" / "AMD").rmdir()
    write_image(kermany_tree / "holdout" / "CNV" / "CNV-1-1.jpeg", texture(1))
    with pytest.raises(ValueError, match=r"'holdout'.*accepted: 'train', 'test', 'val'"):
        scan_kermany_oct(kermany_tree)


def test_plain_tree_reads_patient_and_source_from_manifest(plain_tree):
    cands = {c.original_path: c for c in scan_plain_tree(plain_tree)}
    assert set(cands) == {
        "lung-covid/a1.png",
        "lung-covid/a2.png",
        "lung-normal/b1.png",
        "lung-normal/b2.png",
        "lung-opacity/c1.png",
        "lung-opacity/unlisted.png",
    }
    a2 = cands["lung-covid/a2.png"]
    assert (a2.patient_key, a2.source) == ("p-1", "Collection A")
    assert a2.extra["source_note"] == "patient_id inferred by dHash"
    assert a2.extra["license_note"] == "CC BY 4.0"
    # one namespace for the whole manifest: p-1 in collections A and B is one person
    assert {cands[k].patient_namespace for k in cands} == {"real-mini"}
    assert cands["lung-normal/b1.png"].patient_key == "p-1"
    # rows without an ID, and files the manifest does not list, are their own groups
    assert cands["lung-normal/b2.png"].patient_key == "img:lung-normal/b2.png"
    assert cands["lung-opacity/unlisted.png"].source == "real-mini"


def test_plain_tree_refuses_label_that_contradicts_folder(plain_tree):
    text = (plain_tree / "manifest.csv").read_text()
    (plain_tree / "manifest.csv").write_text(
        text.replace("lung-opacity/c1.png,lung-opacity", "lung-opacity/c1.png,lung-normal")
    )
    with pytest.raises(
        ValueError, match="labelled 'lung-normal' but lies in the folder 'lung-opacity'"
    ):
        scan_plain_tree(plain_tree)


def test_plain_tree_without_manifest(tmp_path):
    write_image(tmp_path / "lung-normal" / "n.png", texture(1))
    (cand,) = scan_plain_tree(tmp_path, source="local-upload")
    assert (cand.class_key, cand.source, cand.patient_key) == (
        "lung-normal",
        "local-upload",
        "img:lung-normal/n.png",
    )
    with pytest.raises(ValueError, match="does not exist"):
        scan_plain_tree(tmp_path, manifest_csv=tmp_path / "nope.csv")
