"""A study's result as a FHIR R4 DiagnosticReport (plain dicts; ``fhir.resources`` validates
them in the tests).

One contained Observation per finding (class) and image, with the calibrated probability as
``valueQuantity`` (UCUM "1"), the model as a contained Device (name + version) referenced from
each Observation (R4 has no DiagnosticReport.device), and ``interpretation`` "A" (abnormal)
on an image's top finding when that class is urgent. ``status`` follows the reading:
processing or failed -> registered (no results yet), AI only -> preliminary, read by a
person -> final, amended after sign-off -> amended. The patient is the pseudonym; the imaging
study is referenced by its original Study Instance UID (the sender's own), so a RIS can file it.
"""

from __future__ import annotations

from typing import Any

from clinical.selectors.results import reading_impression

LOINC = "http://loinc.org"
FINDING_SYSTEM = "urn:radviewer:finding"
PSEUDONYM_SYSTEM = "urn:radviewer:patient-pseudonym"
STUDY_SYSTEM = "urn:radviewer:study"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _status(result: dict[str, Any]) -> str:
    images = result["images"]
    reviews = [r for img in images for r in img["reviews"]]
    if result["status"] in ("processing", "failed"):
        return "registered"
    if any(r["amendment"] for r in reviews):
        return "amended"
    if result["status"] in ("reviewed", "signed_off"):
        return "final"
    return "preliminary"


def _device(prediction: dict[str, Any], device_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": device_id,
        "manufacturer": "RadViewer",
        "deviceName": [{"name": prediction["model_name"] or "unknown model", "type": "model-name"}],
        "version": [{"value": prediction["model_version"] or "unknown"}],
        "type": {"text": f"AI triage model ({prediction['arm']} arm)"},
    }


def _observations(image: dict[str, Any], *, status: str, device_ref: str, subject: dict | None) -> list[dict]:
    prediction = image["prediction"]
    observations = []
    top = prediction["top_class"]
    for n, finding in enumerate(prediction["findings"], start=1):
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"obs-{image['id']}-{n}",
            "status": status,
            "code": {
                "coding": [{"system": FINDING_SYSTEM, "code": finding["key"], "display": finding["display_name"]}],
                "text": f"Probability of {finding['display_name']}",
            },
            "valueQuantity": {"value": round(finding["probability"], 6), "unit": "probability",
                              "system": "http://unitsofmeasure.org", "code": "1"},
            "device": {"reference": device_ref},
            "method": {"text": "AI triage, calibrated probability"},
            "note": [{"text": image["name"]}],  # "image N", or the file name where shown
        }
        if finding["key"] == top and finding["urgent"]:
            obs["interpretation"] = [{
                "coding": [{"system": INTERPRETATION_SYSTEM, "code": "A", "display": "Abnormal"}],
                "text": "urgent finding: read first",
            }]
        if subject:
            obs["subject"] = subject
        observations.append(obs)
    if prediction["out_of_scope"]:
        observations.append({
            "resourceType": "Observation", "id": f"obs-{image['id']}-scope", "status": status,
            "code": {"text": "Image outside the scope the model was trained for"},
            "valueBoolean": True, "device": {"reference": device_ref}, **({"subject": subject} if subject else {}),
        })
    return observations


def _conclusion(result: dict[str, Any]) -> tuple[str, list[dict]]:
    lines, codes = [], {}
    for image in result["images"]:
        prediction, reviews = image["prediction"], image["reviews"]
        if prediction and prediction["status"] == "withheld":
            lines.append(f"{image['name']}: AI result withheld (blinded read) until a reader saves a verdict")
        elif prediction and prediction["status"] == "succeeded" and not prediction["top_class"]:
            lines.append(f"{image['name']}: AI named no class (could not tell a chest X-ray from a "
                         "retinal OCT) - read without the AI")
        elif prediction and prediction["status"] == "succeeded":
            scope = " - outside model scope" if prediction["out_of_scope"] else ""
            lines.append(f"{image['name']}: AI {prediction['top_class_display']} "
                         f"(p={prediction['confidence']:.2f}){scope}")
        elif prediction and prediction["status"] == "failed":
            lines.append(f"{image['name']}: AI triage failed: {prediction['failure_reason']}")
        if reviews:
            latest = reviews[0]
            lines.append(f"{image['name']}: read by {latest['reader']}: {latest['verdict']}"
                         f"{' ' + latest['label_display'] if latest['label'] else ''}")
            impression = reading_impression(latest)
            if impression:  # the reader's structured impression: class, then free text
                lines.append(f"{image['name']}: Impression: {impression}")
        if reviews and reviews[0]["label"]:
            label, display = reviews[0]["label"], reviews[0]["label_display"]
        elif prediction and prediction["top_class"]:
            label, display = prediction["top_class"], prediction["top_class_display"]
        else:
            label = display = ""
        if label:
            codes[label] = {"coding": [{"system": FINDING_SYSTEM, "code": label, "display": display}]}
    return "\n".join(lines) or "AI triage in progress", list(codes.values())


def diagnostic_report(result: dict[str, Any], *, patient_key: str) -> dict[str, Any]:
    """``result`` is ``clinical.selectors.results.study_result(...)`` of the study."""
    status = _status(result)
    obs_status = {"registered": "registered", "amended": "amended"}.get(status, status)
    subject = {"identifier": {"system": PSEUDONYM_SYSTEM, "value": patient_key},
               "display": "pseudonymous patient"} if patient_key else None
    contained: list[dict] = []
    devices: dict[tuple, str] = {}
    issued = []
    if status != "registered":
        for image in result["images"]:
            prediction = image["prediction"]
            if not prediction or prediction["status"] != "succeeded":
                continue
            key = (prediction["model_name"], prediction["model_version"], prediction["arm"])
            if key not in devices:
                devices[key] = f"device-{len(devices) + 1}"
                contained.append(_device(prediction, devices[key]))
            contained += _observations(image, status=obs_status, device_ref=f"#{devices[key]}", subject=subject)
            if prediction["completed_at"]:
                issued.append(prediction["completed_at"])
    conclusion, conclusion_codes = _conclusion(result)
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": result["uid"],
        "identifier": [{"system": STUDY_SYSTEM, "value": result["uid"]}],
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}],
                 "text": "AI triage of a diagnostic imaging study"},
        "effectiveDateTime": result["received_at"],
        "issued": max(issued) if issued else result["received_at"],
        "conclusion": conclusion,
    }
    accession = result["accession_number"] or (result["source_study"] or {}).get("accession_number", "")
    if accession:
        report["identifier"].append({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": accession,
        })
    if subject:
        report["subject"] = subject
    if result["source_study"]:
        report["imagingStudy"] = [{"identifier": {
            "system": "urn:dicom:uid", "value": f"urn:oid:{result['source_study']['study_instance_uid']}"}}]
    if contained:
        report["contained"] = contained
        report["result"] = [{"reference": f"#{r['id']}"} for r in contained if r["resourceType"] == "Observation"]
    if conclusion_codes:
        report["conclusionCode"] = conclusion_codes
    return report
