"""A study's result as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report, highdicom).

For the source PACS: the SR carries the sender's ORIGINAL Study Instance UID (so the PACS files
it with the study) and references the original SOP instances (evidence and per-image
measurement groups), all re-identified through the audited mapping read in
``clinical.selectors.results.study_result``. The patient module is the one the source sent (kept in the
protected mapping), so the PACS files the SR under the same patient and study; for an image
without it the pseudonym is used.

Content: observer = the AI device (RadViewer, model name and version); one measurement group
per DICOM image with the algorithm identification, the top finding as finding type, one
probability measurement per class (UCUM "1"), an "outside model scope" evaluation and, once
a person has read it, the reader's label. Class codes use the private scheme ``99RADVIEWER``.

UIDs are derived from the content, so fetching the same result twice gives the same SOP
Instance UID (a PACS does not store duplicates) and a changed result gives a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

import highdicom as hd
import pydicom
from django.core.files.storage import default_storage
from pydicom.sr.codedict import codes

from clinical.models import Image, Study

SCHEME = "99RADVIEWER"
UID_NAMESPACE = uuid.UUID("6f1c0a52-6f86-4f53-9a3c-52a7f4d3c1e0")
SERIES_NUMBER = 9901
PROBABILITY_UNIT = hd.sr.CodedConcept("1", "UCUM", "no units")
PROCEDURE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study")


class SrUnavailable(Exception):
    """No SR can be made yet or at all; ``str(exc)`` says why (-> 409)."""


def derived_uid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, '|'.join(parts)).int}"


def _concept(key: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(key, SCHEME, meaning[:64])


def _evidence(image: Image, source: dict[str, str]) -> pydicom.Dataset:
    """The stored (de-identified) header with the sender's original UIDs put back."""
    with default_storage.open(image.file.name, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
    ds.StudyInstanceUID = source["study_instance_uid"]
    ds.SeriesInstanceUID = source["series_instance_uid"]
    ds.SOPInstanceUID = source["sop_instance_uid"]
    ds.SOPClassUID = source["sop_class_uid"] or ds.SOPClassUID
    ds.AccessionNumber = source["accession_number"] or ""
    patient = source.get("patient") or {}
    if patient.get("PatientID"):
        # Re-identified for the source PACS, which already holds this patient: a PACS files
        # an object by patient and study, so the SR must carry the identity it was sent with.
        for keyword, value in patient.items():
            setattr(ds, keyword, value)
    else:
        name = str(ds.get("PatientName", "") or "")
        if name and "^" not in name:
            ds.PatientName = f"{name}^"  # a pseudonym is one family-name component (PS3.5 6.2.1.2)
    return ds


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
            value=_concept(reviews[0]["label"], reviews[0]["label_display"]),
        ))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(study_uid, "image", str(item["id"])), identifier=f"AI triage of {item['name']}"[:64]
        ),
        # No class when the scope was undecided (read without the AI): say so, never a class.
        finding_type=_concept(prediction["top_class"], prediction["top_class_display"]) if prediction["top_class"]
        else _concept("scope-undecided", "No AI class: chest X-ray or retinal OCT undecided"),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup(evidence.SOPClassUID, evidence.SOPInstanceUID)],
    )


def study_sr(study: Study, result: dict[str, Any]) -> bytes:
    """Part 10 bytes of the SR for ``study``; ``result`` is its ``study_result(...)``."""
    items = [i for i in result["images"] if i["source_ids"]]
    if not items:
        raise SrUnavailable("a DICOM SR refers to DICOM source instances, and this study has none "
                            "(it was sent as PNG/JPEG); use the JSON or FHIR result")
    ready = [i for i in items if i["prediction"] and i["prediction"]["status"] == "succeeded"]
    if not ready:
        raise SrUnavailable(f"no AI result yet (study status: {result['status']}); poll the study and try again")
    images = {img.pk: img for img in study.images.filter(pk__in=[i["id"] for i in ready])}
    evidence = [_evidence(images[i["id"]], i["source_ids"]) for i in ready]
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
        [[i["id"], i["prediction"], i["reviews"]] for i in ready], sort_keys=True, default=str).encode()).hexdigest()
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=derived_uid(original_study_uid, "radviewer-ai-series"),
        series_number=SERIES_NUMBER,
        sop_instance_uid=derived_uid(original_study_uid, "radviewer-ai-sr", content_digest),
        instance_number=1,
        manufacturer="RadViewer",
        series_description="RadViewer AI triage",
        is_complete=len(ready) == len(items),
        is_final=result["status"] == Study.Status.SIGNED_OFF,
    )
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
