"""A study's result as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report, highdicom).

For the source PACS: the SR carries the sender's ORIGINAL Study Instance UID (so the PACS files
it with the study) and references the original SOP instances (evidence and per-image
measurement groups), all re-identified through the audited mapping read in
``clinical.selectors.results.study_result``. The patient module is the one the source sent (kept in the
protected mapping), so the PACS files the SR under the same patient and study; for an image
stored before the mapping kept it, the pseudonym is used. Type 2 attributes the source left
out (Study ID, Study Date, ...) are present and empty.

Content: observer = the AI device (RadViewer, model name and version); one measurement group
per DICOM image with the algorithm identification, the top finding as finding type, one
probability measurement per class (UCUM "1"), an "outside model scope" evaluation and, once
a person has read it, the reader's label and impression (TEXT, DCM 121073 "Impression": the
confirmed class's display name, then the reader's free text). The finding type and the reader's label are coded
with the standard concept of ``clinical.api.codes`` (SNOMED CT, or DICOM for "opacity") and the
class key in the private scheme ``99RADVIEWER`` as its equivalent code; probabilities are
named in the private scheme (there is no standard "probability of X" concept).

Because it names the patient, the SR says PatientIdentityRemoved=NO and carries no
De-identification Method: the stored copies are de-identified, this export is not.

UIDs are derived from the content, so fetching the same result twice gives the same SOP
Instance UID (a PACS does not store duplicates) and a changed result gives a new one.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import uuid
from typing import Any

import highdicom as hd
import pydicom
from django.core.files.storage import default_storage
from pydicom.sr.codedict import codes

from clinical.api.codes import PRIVATE_SCHEME, PRIVATE_SCHEME_NAME, standard_code
from clinical.models import ApiClient, Image, Study
from clinical.selectors.results import reading_impression, study_queryset, study_result

SCHEME = PRIVATE_SCHEME
UID_NAMESPACE = uuid.UUID("6f1c0a52-6f86-4f53-9a3c-52a7f4d3c1e0")
SERIES_NUMBER = 9901
PROBABILITY_UNIT = hd.sr.CodedConcept("1", "UCUM", "no units")
PROCEDURE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study")
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# Part of the SOP Instance UID: an SR written differently for the same result (here: standard
# codes, no de-identification claim) is a new instance, not a silent duplicate in the PACS.
SR_FORMAT = "2"


class SrUnavailable(Exception):
    """No SR can be made yet or at all; ``str(exc)`` says why (-> 409)."""


def derived_uid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, '|'.join(parts)).int}"


def _concept(key: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(key, SCHEME, meaning[:64])


def _class_concept(key: str, meaning: str) -> hd.sr.CodedConcept:
    """A class as its standard concept (SNOMED CT / DICOM); private when it has none.

    The private class goes in as the equivalent code afterwards (``_add_equivalents``):
    highdicom rebuilds concepts and drops an Equivalent Code Sequence.
    """
    standard = standard_code(key)
    if standard is None:
        return _concept(key, meaning)
    return hd.sr.CodedConcept(standard.value, standard.scheme, standard.meaning)


FINDING = "121071"  # DCM "Finding": TID 1501's finding type
READER_LABEL = "reader-label"


def _code_value(code: pydicom.Dataset) -> str:
    # Private keys over 16 characters are written as Long Code Value (PS3.3 8.8).
    return str(code.get("CodeValue") or code.get("LongCodeValue") or "")


def _add_equivalents(sr: pydicom.Dataset, ready: list[dict[str, Any]]) -> None:
    """Put each coded class's private code in its Equivalent Code Sequence (PS3.3 8.9).

    Measurement groups are in the order of ``ready``; in each, the finding type is the AI's
    top class and the reader-label evaluation the reader's class.
    """
    measurements = next(item for item in sr.ContentSequence
                        if _code_value(item.ConceptNameCodeSequence[0]) == "126010")  # Imaging Measurements
    for group, image in zip(measurements.ContentSequence, ready, strict=True):
        prediction, reviews = image["prediction"], image["reviews"]
        keys = {FINDING: (prediction["top_class"], prediction["top_class_display"])}
        if reviews and reviews[0]["label"]:
            keys[READER_LABEL] = (reviews[0]["label"], reviews[0]["label_display"])
        for item in group.ContentSequence:
            name = _code_value(item.ConceptNameCodeSequence[0])
            if name in keys and keys[name][0] and standard_code(keys[name][0]) is not None:
                item.ConceptCodeSequence[0].EquivalentCodeSequence = [_concept(*keys[name])]


# Type 2 attributes of the SR's Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1):
# present, empty when unknown. A source may omit any of them (modalities often send no Study
# ID), and highdicom reads them off the first evidence item.
_TYPE2_HEADER = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _evidence(image: Image, source: dict[str, Any], *, pseudonym: str) -> pydicom.Dataset:
    """The referenced instance as the source PACS knows it, built from the protected mapping.

    Not the stored header: that copy is de-identified (it says PatientIdentityRemoved=YES, with
    blanked dates and "ANONYMIZED" values) and highdicom copies its Patient and Study modules
    into the SR. The SR carries the sender's identifiers and makes no de-identification claim.
    """
    ds = pydicom.Dataset()
    ds.StudyInstanceUID = source["study_instance_uid"]
    ds.SeriesInstanceUID = source["series_instance_uid"]
    ds.SOPInstanceUID = source["sop_instance_uid"]
    ds.SOPClassUID = source["sop_class_uid"] or _stored_sop_class(image)
    ds.AccessionNumber = source["accession_number"] or ""
    patient = {k: v for k, v in (source.get("patient") or {}).items() if v}
    if patient:
        # Re-identified for the source PACS, which already holds this patient: a PACS files
        # an object by patient and study, so the SR must carry the identity it was sent with.
        for keyword, value in patient.items():
            setattr(ds, keyword, value)
    else:
        # Stored before the mapping kept the patient module: the pseudonym, as one family-name
        # component (PS3.5 6.2.1.2).
        ds.PatientID = pseudonym
        ds.PatientName = f"{pseudonym}^"
    for keyword in _TYPE2_HEADER:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _stored_sop_class(image: Image) -> str:
    with default_storage.open(image.file.name, "rb") as fh:
        return str(pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=["SOPClassUID"]).SOPClassUID)


def _group(
    item: dict[str, Any], evidence: pydicom.Dataset, study_uid: str
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    prediction = item["prediction"]
    algorithm = hd.sr.AlgorithmIdentification(
        name=prediction["model_name"] or "unknown", version=prediction["model_version"] or "unknown"
    )
    measurements = [
        hd.sr.Measurement(name=_concept(f["key"], f"{f['display_name']} probability"), value=float(f["probability"]),
                          unit=PROBABILITY_UNIT, algorithm_id=algorithm)
        for f in prediction["findings"]
    ]
    evaluations = [hd.sr.QualitativeEvaluation(
        name=_concept("out-of-scope", "Outside model scope"),
        value=codes.SCT.Yes if prediction["out_of_scope"] else codes.SCT.No,
    )]
    reviews = item["reviews"]
    if reviews and reviews[0]["label"]:
        evaluations.append(hd.sr.QualitativeEvaluation(
            name=_concept("reader-label", "Finding confirmed by reader"),
            value=_class_concept(reviews[0]["label"], reviews[0]["label_display"]),
        ))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(study_uid, "image", str(item["id"])), identifier=f"AI triage of {item['name']}"[:64]
        ),
        # No class when the scope was undecided (read without the AI): say so, never a class.
        finding_type=_class_concept(prediction["top_class"], prediction["top_class_display"]) if prediction["top_class"]
        else _concept("scope-undecided", "No AI class: chest X-ray or retinal OCT undecided"),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        # An IMAGE reference must name an image storage class; an image of a private class is
        # referenced by the evidence sequence only (Source of Measurement is optional in TID 1501).
        source_images=[hd.sr.SourceImageForMeasurementGroup(evidence.SOPClassUID, evidence.SOPInstanceUID)]
        if "Image Storage" in pydicom.uid.UID(evidence.SOPClassUID).name else None,
    )
    impression = reading_impression(reviews[0]) if reviews else ""
    if impression:
        # The reader's structured impression (class, then free text) as a TEXT item of the
        # image's measurement group, next to the reader's label: (121073, DCM, "Impression").
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=codes.DCM.Impression, value=impression[:1024],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        ))
    return group


def _build(evidence: list[pydicom.Dataset], **kwargs: Any) -> hd.sr.Comprehensive3DSR:
    """The SR; its Patient and Study modules come from ``evidence[0]``, via highdicom.

    highdicom looks the first instance's SOP Class up in its table of standard IODs to find
    those modules, and has no entry for a private or unlisted class (a 500 otherwise). The
    modules are the same for every image IOD, so such a header is read as a Secondary
    Capture and the evidence reference is given its real class back.
    """
    try:
        return hd.sr.Comprehensive3DSR(evidence=evidence, **kwargs)
    except KeyError:
        real_class = evidence[0].SOPClassUID
        header = copy.copy(evidence[0])
        header.SOPClassUID = SECONDARY_CAPTURE
        sr = hd.sr.Comprehensive3DSR(evidence=[header, *evidence[1:]], **kwargs)
        for series in sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence:
            for ref in series.ReferencedSOPSequence:
                if ref.ReferencedSOPInstanceUID == header.SOPInstanceUID:
                    ref.ReferencedSOPClassUID = real_class
        return sr


def study_sr(study: Study, result: dict[str, Any]) -> bytes:
    """Part 10 bytes of the SR for ``study``; ``result`` is its ``study_result(...)``."""
    items = [i for i in result["images"] if i["source_ids"]]
    if not items:
        raise SrUnavailable("a DICOM SR refers to DICOM source instances, and this study has none "
                            "(it was sent as PNG/JPEG); use the JSON or FHIR result")
    if result.get("ai_withheld"):
        raise SrUnavailable("blinded read: the AI result is withheld until a reader saves a verdict; "
                            "the SR is available then")
    ready = [i for i in items if i["prediction"] and i["prediction"]["status"] == "succeeded"]
    if not ready:
        raise SrUnavailable(f"no AI result yet (study status: {result['status']}); poll the study and try again")
    images = {img.pk: img for img in study.images.filter(pk__in=[i["id"] for i in ready])}
    evidence = [_evidence(images[i["id"]], i["source_ids"], pseudonym=study.patient_key) for i in ready]
    original_study_uid = evidence[0].StudyInstanceUID
    groups = [_group(i, ev, original_study_uid) for i, ev in zip(ready, evidence, strict=True)]
    first = ready[0]["prediction"]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", first["model_name"], first["model_version"]),
            name="RadViewer", manufacturer_name="RadViewer",
            model_name=f"{first['model_name']} {first['model_version']}"[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
    )
    content_digest = hashlib.sha256(json.dumps(
        [SR_FORMAT, [[i["id"], i["prediction"], i["reviews"]] for i in ready]], sort_keys=True, default=str,
    ).encode()).hexdigest()
    sr = _build(
        evidence,
        content=report[0],
        series_instance_uid=derived_uid(original_study_uid, "radviewer-ai-series"),
        series_number=SERIES_NUMBER,
        sop_instance_uid=derived_uid(original_study_uid, "radviewer-ai-sr", content_digest),
        instance_number=1,
        manufacturer="RadViewer",
        series_description="RadViewer AI triage",
        is_complete=len(ready) == len(items),
        is_final=result["status"] == Study.Status.SIGNED_OFF,
        # UTF-8: the patient's name comes back as the source sent it, in any script.
        specific_character_set="ISO_IR 192",
    )
    # The SR names the patient (see _evidence): say so, rather than inherit a claim.
    sr.PatientIdentityRemoved = "NO"
    for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified"):
        if keyword in sr:
            delattr(sr, keyword)
    _add_equivalents(sr, ready)
    scheme = pydicom.Dataset()
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = PRIVATE_SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = "RadViewer"
    sr.CodingSchemeIdentificationSequence = [scheme]
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def client_study_sr(study: Study, client: ApiClient) -> bytes:
    """The SR of ``study`` as its sender gets it (re-identified), for a result destination;
    raises SrUnavailable when none can be made."""
    study = study_queryset().get(pk=study.pk)
    return study_sr(study, study_result(study, client=client, include_patient=True))
