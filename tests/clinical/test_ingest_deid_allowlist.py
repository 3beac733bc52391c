"""The de-identification allow-list against the whole of PS3.15 Table E.1-1 and a corpus of
PHI-bearing attributes of our own (private blocks, nested sequences, person names)."""

from __future__ import annotations

import numpy as np
from pydicom.datadict import keyword_for_tag

from clinical.ingest import ingest_dicom
from clinical.ingest.deid_profile import ALLOWED, IMAGE_ATTRIBUTES, PROFILE_ATTRIBUTES
from tests.clinical.dicom_factory import make_cxr_dicom, make_oct_dicom
from tests.support.phi import (
    Planted,
    assert_deidentified,
    leaks,
    plant_corpus,
    plant_table,
    read,
    table_e1_1,
    table_row_for,
    write,
)

KEY = b"test-pseudonym-key-0123456789abcdef"
IDENTITY = {"patient_name": "Doe^Jane", "patient_id": "MRN-55521", "accession": "ACC-7781", "issuer": "ST-ELSEWHERE"}


def _planted_identity() -> Planted:
    return Planted(markers={"Doe^Jane", "MRN-55521", "ACC-7781", "ST-ELSEWHERE"})


def _ingest(data: bytes):
    return ingest_dicom(data, pseudonym_key=KEY, max_pixels=1_000_000)


def test_the_table_copy_is_the_whole_basic_profile_column() -> None:
    rows = table_e1_1()
    assert len(rows) == 620
    assert len({(r.tag, r.mask) for r in rows}) == len(rows)
    actions = set().union(*(r.actions for r in rows))
    assert actions == {"X", "Z", "D", "U", "U*"}
    for name in ("Verifying Observer Name", "Person Name", "Contribution Description", "Verifying Observer Sequence"):
        assert any(r.name == name for r in rows), name


def test_every_table_attribute_the_allow_list_keeps_has_an_action_the_table_permits() -> None:
    kept = [(tag, action) for tag, action in ALLOWED.items() if table_row_for(tag) is not None]
    assert kept, "the patient and study identifiers must be among them"
    for tag, action in kept:
        row = table_row_for(tag)
        keyword = keyword_for_tag(tag)
        assert keyword in PROFILE_ATTRIBUTES, f"{keyword} is in Table E.1-1 but kept as-is"
        assert keyword not in IMAGE_ATTRIBUTES
        permitted = row.actions | ({"K"} if "U*" in row.actions else set())
        assert action in permitted, f"{keyword}: {action} not in {sorted(row.actions)}"
    for keyword in PROFILE_ATTRIBUTES:
        assert any(table_row_for(t) for t, a in ALLOWED.items() if keyword_for_tag(t) == keyword), keyword


def test_every_attribute_of_table_e1_1_at_every_depth_is_removed_or_replaced() -> None:
    ds = read(make_cxr_dicom(rows=32, cols=32, **IDENTITY))
    planted = _planted_identity()
    plant_table(ds, planted, nested_in=("ReferencedImageSequence", "AnatomicRegionSequence"))
    assert len(planted.top_level) >= 600
    result = _ingest(write(ds))
    assert_deidentified(result.deidentified_bytes, planted, pseudonym=result.patient_pseudonym, allowed=ALLOWED)

    stored = read(result.deidentified_bytes)
    # What is kept is still the image: pixels, geometry, the references (remapped).
    assert np.array_equal(stored.pixel_array, result.decoded.pixels_raw)
    assert stored.Modality == "DX" and stored.BodyPartExamined == "CHEST"
    assert len(stored.ReferencedImageSequence) == 2  # the planted one and the nested copy
    assert stored.StudyDate == "" and stored.AccessionNumber == "" and stored.PatientBirthDate == ""
    assert stored.ContentDate == "19000101" and stored.DeviceSerialNumber == "ANONYMIZED"
    assert stored.PatientIdentityRemoved == "YES"
    again = _ingest(result.deidentified_bytes)  # the stored copy can be ingested again
    assert leaks(again.deidentified_bytes, planted) == []


def test_a_multiframe_oct_keeps_its_functional_groups_but_not_the_phi_inside() -> None:
    ds = read(make_oct_dicom(frames=3, rows=32, cols=32, window=(100.0, 200.0), **IDENTITY))
    planted = _planted_identity()
    plant_table(ds, planted, nested_in=("SharedFunctionalGroupsSequence",))
    result = _ingest(write(ds))
    assert_deidentified(result.deidentified_bytes, planted, pseudonym=result.patient_pseudonym, allowed=ALLOWED)
    stored = read(result.deidentified_bytes)
    voi = stored.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (100.0, 200.0)
    assert int(stored.NumberOfFrames) == 3


def test_own_corpus_of_phi_bearing_attributes_private_tags_and_nested_sequences() -> None:
    ds = read(make_cxr_dicom(rows=32, cols=32, **IDENTITY))
    planted = _planted_identity()
    count = plant_corpus(ds, planted)
    assert count >= 50 and len(planted.markers) >= 100
    original = write(ds)
    assert len(leaks(original, planted)) >= 100  # the planted values really are in the input
    result = _ingest(original)
    assert_deidentified(result.deidentified_bytes, planted, pseudonym=result.patient_pseudonym, allowed=ALLOWED)
    stored = read(result.deidentified_bytes)
    for keyword in ("VerifyingObserverName", "PersonName", "ContributionDescription", "VerifyingObserverSequence"):
        assert keyword not in stored, keyword
    code = stored.AnatomicRegionSequence[0]  # kept, its private tag and person name not
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("51185008", "SCT")
    assert [e.keyword for e in code] == ["CodeValue", "CodingSchemeDesignator", "CodeMeaning"]


def test_a_private_tag_is_kept_only_when_named_with_its_creator() -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from clinical.ingest.deid import deidentify

    ds = read(make_cxr_dicom(rows=16, cols=16))
    block = ds.private_block(0x0019, "ACME SAFE 1.0", create=True)
    block.add_new(0x10, "DS", "1.5")  # a technical value the site chose to keep
    block.add_new(0x11, "LO", "PHI0001 about Jane Doe")  # same block, not named: removed
    item = Dataset()
    item.PersonName = "Doe^Jane"
    item.KVP = "70"
    block.add_new(0x12, "SQ", Sequence([item]))  # kept, its items cleaned
    other = ds.private_block(0x0021, "ACME OTHER", create=True)
    other.add_new(0x10, "DS", "1.5")  # same offset, other creator: removed

    kept = frozenset({("ACME SAFE 1.0", 0x10), ("ACME SAFE 1.0", 0x12)})
    deidentify(ds, pseudonym_key=KEY, pseudonym="pt-1", kept_private=kept)
    private = {(e.tag.group, e.tag.element & 0xFF): e.value for e in ds if e.tag.is_private and not e.tag.is_private_creator}
    assert set(private) == {(0x0019, 0x10), (0x0019, 0x12)}
    assert private[(0x0019, 0x10)] == "1.5"
    assert [e.keyword for e in private[(0x0019, 0x12)][0]] == ["KVP"]
    assert ds[0x00190010].value == "ACME SAFE 1.0" and 0x00210010 not in ds

    default = read(make_cxr_dicom(rows=16, cols=16))
    default.private_block(0x0019, "ACME SAFE 1.0", create=True).add_new(0x10, "DS", "1.5")
    deidentify(default, pseudonym_key=KEY, pseudonym="pt-1")
    assert not any(e.tag.is_private for e in default.iterall())
