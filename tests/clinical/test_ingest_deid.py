"""De-identification of the stored DICOM copy (PS3.15 Basic Profile) and keyed pseudonyms."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless, generate_uid

from clinical.ingest import ingest_dicom, patient_pseudonym, remap_uid
from tests.clinical.dicom_factory import PHI, PRIVATE_VALUE, make_cxr_dicom

KEY = b"test-pseudonym-key-0123456789abcdef"
OTHER_KEY = b"another-deployment-key-fedcba9876543210"


def _ingest(data: bytes, key: bytes = KEY, **kwargs: object):
    return ingest_dicom(data, pseudonym_key=key, max_pixels=1_000_000, **kwargs)


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def test_phi_is_gone_from_the_stored_bytes() -> None:
    prior = generate_uid()
    original = make_cxr_dicom(
        rows=32,
        cols=32,
        patient_name="Doe^Jane",
        patient_id="MRN-55521",
        accession="ACC-7781",
        issuer="ST-ELSEWHERE",
        referenced_sop_uid=prior,
    )
    src = _read(original)
    result = _ingest(original)
    stored = result.deidentified_bytes
    ds = _read(stored)

    secrets = [
        "Doe",
        "MRN-55521",
        "ACC-7781",
        "ST-ELSEWHERE",
        PRIVATE_VALUE,
        "OVERLAY-PHI",
        "STELSEWHERE_PACS",
        prior,
        *PHI.values(),
    ]
    secrets += [
        str(src[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
    ]
    # Single letters (Patient's Sex "F") occur in any binary; everything longer must be gone.
    leaked = [s for s in secrets if len(s) >= 4 and s.encode() in stored]
    assert leaked == []

    assert ds.PatientName == result.patient_pseudonym
    assert ds.PatientID == result.patient_pseudonym
    assert ds.PatientIdentityRemoved == "YES"
    assert "Basic Profile" in ds.DeidentificationMethod
    code = ds.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    for keyword in (
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "ReferringPhysicianName",
    ):
        assert ds[keyword].value in ("", None), keyword  # Z: present, empty
    for keyword in (
        "PatientAge",
        "PatientAddress",
        "OtherPatientIDs",
        "EthnicGroup",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "OperatorsName",
        "PerformingPhysicianName",
        "RequestAttributesSequence",
        "ImageComments",
        "IssuerOfPatientID",
        "SeriesDate",
        "RequestingPhysician",
    ):
        assert keyword not in ds, keyword
    assert ds.DeviceSerialNumber == "ANONYMIZED"  # D: Type 1 in enhanced equipment
    assert ds.ContentDate == "19000101"
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert not any(0x6000 <= elem.tag.group <= 0x60FF for elem in ds)


def test_what_is_kept_is_still_a_valid_image() -> None:
    original = make_cxr_dicom(rows=32, cols=32, transfer_syntax=RLELossless)
    result = _ingest(original)
    ds = _read(result.deidentified_bytes)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.preamble == b"\x00" * 128
    assert ds.Modality == "DX" and ds.BodyPartExamined == "CHEST"
    assert ds.SOPClassUID == _read(original).SOPClassUID  # a standard UID is not remapped
    assert ds.PixelData == _read(original).PixelData  # pixels untouched, still compressed
    assert np.array_equal(ds.pixel_array, result.decoded.pixels_raw)
    again = _ingest(result.deidentified_bytes)  # the stored copy can be ingested again
    assert np.array_equal(again.decoded.pixels, result.decoded.pixels)


def test_uid_remap_is_consistent_and_keyed() -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    first = _ingest(make_cxr_dicom(rows=16, cols=16, study_uid=study, series_uid=series, sop_uid=sop))
    second = _ingest(make_cxr_dicom(rows=16, cols=16, study_uid=study, series_uid=series, sop_uid=sop))
    other = _ingest(make_cxr_dicom(rows=16, cols=16))
    other_key = _ingest(
        make_cxr_dicom(rows=16, cols=16, study_uid=study, series_uid=series, sop_uid=sop), key=OTHER_KEY
    )

    assert first.original_uids == {
        "study": study,
        "series": series,
        "sop": sop,
        "sop_class": "1.2.840.10008.5.1.4.1.1.1.1",
    }
    assert first.deid_uids == second.deid_uids
    assert first.deid_uids["sop_class"] == first.original_uids["sop_class"]
    for level in ("study", "series", "sop"):
        new = first.deid_uids[level]
        assert new != first.original_uids[level]
        assert new.startswith("2.25.") and len(new) <= 64
        assert pydicom.uid.UID(new).is_valid
        assert new != other.deid_uids[level]
        assert new != other_key.deid_uids[level]
    assert len({first.deid_uids[k] for k in ("study", "series", "sop")}) == 3


def test_referenced_uids_map_like_the_instances_they_reference() -> None:
    prior_sop = generate_uid()
    prior = _ingest(make_cxr_dicom(rows=16, cols=16, sop_uid=prior_sop))
    current = _ingest(make_cxr_dicom(rows=16, cols=16, referenced_sop_uid=prior_sop))
    ref = _read(current.deidentified_bytes).ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == prior.deid_uids["sop"]
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"


def test_uid_remap_under_an_organisation_root_fits_64_characters() -> None:
    root = "1.2.826.0.1.3680043.10.999"
    new = remap_uid("1.2.3.4.5", pseudonym_key=KEY, uid_root=root)
    assert new.startswith(root + ".") and len(new) <= 64
    assert new == remap_uid("1.2.3.4.5", pseudonym_key=KEY, uid_root=root)
    with pytest.raises(ValueError, match="dotted-decimal"):
        remap_uid("1.2.3", pseudonym_key=KEY, uid_root="1.02.x")
    with pytest.raises(ValueError, match="dotted-decimal"):  # a config error, not bad input
        _ingest(make_cxr_dicom(rows=16, cols=16), uid_root="1.2.x")


def test_pseudonym_is_stable_per_patient_and_keyed() -> None:
    a1 = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="MRN-1", issuer="HOSP-A"))
    a2 = _ingest(
        make_cxr_dicom(rows=16, cols=16, patient_id="MRN-1", issuer="HOSP-A", patient_name="Doe^Jane^Q")
    )  # another study, same patient
    b = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="MRN-2", issuer="HOSP-A"))
    other_issuer = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="MRN-1", issuer="HOSP-B"))
    other_key = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="MRN-1", issuer="HOSP-A"), key=OTHER_KEY)

    assert a1.deid_uids["study"] != a2.deid_uids["study"]
    assert a1.patient_pseudonym == a2.patient_pseudonym
    assert a1.patient_pseudonym.startswith("pt-") and len(a1.patient_pseudonym) == 23
    assert (
        len(
            {
                a1.patient_pseudonym,
                b.patient_pseudonym,
                other_issuer.patient_pseudonym,
                other_key.patient_pseudonym,
            }
        )
        == 4
    )
    assert a1.patient_pseudonym == patient_pseudonym(
        pseudonym_key=KEY, patient_id="MRN-1", issuer="HOSP-A", study_uid="ignored"
    )


def test_without_patient_id_the_study_is_its_own_group() -> None:
    study = generate_uid()
    one = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="", study_uid=study))
    same_study = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id="", study_uid=study))
    other_study = _ingest(make_cxr_dicom(rows=16, cols=16, patient_id=""))
    assert one.patient_pseudonym == same_study.patient_pseudonym
    assert one.patient_pseudonym != other_study.patient_pseudonym


def test_accession_is_returned_for_the_protected_mapping_only() -> None:
    result = _ingest(make_cxr_dicom(rows=16, cols=16, accession="ACC-4242"))
    assert result.accession_number_original == "ACC-4242"
    assert b"ACC-4242" not in result.deidentified_bytes


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        _ingest(make_cxr_dicom(rows=16, cols=16), key=b"short")


def test_burned_in_annotation_is_flagged() -> None:
    result = _ingest(make_cxr_dicom(rows=16, cols=16, extra={"BurnedInAnnotation": "YES"}))
    assert any("Burned In Annotation" in w for w in result.deid_warnings)
