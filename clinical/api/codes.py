"""Standard codes for the nine classes in the DICOM SR (one table; docs/integration.md section 5).

Each class is coded twice: a standard concept (SNOMED CT ``SCT`` or DICOM ``DCM``) as the
code a PACS or reporting system can act on, and the class key in the private scheme
``99RADVIEWER`` as an equivalent code, so a consumer that knows RadViewer keeps the exact class.
A class without a verified standard concept stays on the private scheme only (``None``).

Sources, checked by code value and meaning:
- 840539006 COVID-19, 56717001 Tuberculosis, 75570004 Viral pneumonia,
  312912001 Diabetic macular edema, 247153005 Retinal drusen: SNOMED CT International
  (SNOMED's COVID-19 content page, published FHIR value sets).
- 17621005 Normal (SCT) and 112001 Opacity (DCM, CID 6102 chest CAD findings): DICOM PS3.16,
  as shipped in pydicom's concept dictionary. "Opacity" is the radiological finding, which is
  what the non-COVID lung-opacity class means (not a diagnosis).
- Choroidal neovascularisation: no code could be verified here, so private only.
"""

from __future__ import annotations

from typing import NamedTuple

PRIVATE_SCHEME = "99RADVIEWER"
PRIVATE_SCHEME_NAME = "RadViewer triage classes"


class StandardCode(NamedTuple):
    value: str
    scheme: str
    meaning: str


CLASS_CODES: dict[str, StandardCode | None] = {
    "lung-covid": StandardCode("840539006", "SCT", "COVID-19"),
    "lung-normal": StandardCode("17621005", "SCT", "Normal"),
    "lung-opacity": StandardCode("112001", "DCM", "Opacity"),
    "lung-tuberculosis": StandardCode("56717001", "SCT", "Tuberculosis"),
    "lung-viral-pneumonia": StandardCode("75570004", "SCT", "Viral pneumonia"),
    "lung-oct-cnv": None,
    "lung-oct-dme": StandardCode("312912001", "SCT", "Diabetic macular edema"),
    "lung-oct-drusen": StandardCode("247153005", "SCT", "Retinal drusen"),
    "lung-oct-normal": StandardCode("17621005", "SCT", "Normal"),
}


def standard_code(key: str) -> StandardCode | None:
    """The standard concept for class ``key``, or None (private scheme only)."""
    return CLASS_CODES.get(key)
