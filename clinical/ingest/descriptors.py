"""What a reader may see to tell worklist rows apart, taken from the ORIGINAL header before
de-identification, each reduced so that it identifies no one (no Django, no I/O).

* Age band: Patient's Age (``045Y``, ``006M``, ``010W``, ``003D``), else computed from Patient's
  Birth Date and the Study Date (then Series, Acquisition or Content Date). Only a coarse band is
  kept: ``0-17``, ``18-39``, ``40-64``, ``65-89``, ``90+`` (ages over 89 aggregated, as the HIPAA
  safe harbour requires); blank when the header does not say.
* Sex: Patient's Sex reduced to ``M``, ``F``, ``O`` or blank.
* Body part and view: Body Part Examined and View Position, coded strings the de-identification
  allow-list keeps anyway; only letters, digits, space and ``_`` survive, 16 characters at most.
* Description: never the raw free text. Study Description (else Series Description) is split
  into words and only words of ``DESCRIPTION_VOCABULARY`` are kept, in order, without repeats;
  when none is left it is built from Modality, Body Part Examined and View Position
  (``DX CHEST PA``). A name, an MRN or a date in the description therefore never reaches it.
"""

from __future__ import annotations

import re
from datetime import date

AGE_BANDS = ("0-17", "18-39", "40-64", "65-89", "90+")
SEXES = frozenset({"M", "F", "O"})
DESCRIPTION_MAX = 64

# Words a de-identified description may keep: anatomy, projections, positioning and modality
# words of chest radiography and retinal OCT. Nothing here can name a person or a place.
# fmt: off
DESCRIPTION_VOCABULARY = frozenset({
    # modality and technique, the eye
    "XR", "CR", "DX", "X-RAY", "XRAY", "RADIOGRAPH", "OCT", "OPT", "OP", "TOMOGRAPHY", "FUNDUS", "SCAN",
    "CUBE", "RASTER", "LINE", "VOLUME", "MACULAR", "MACULA", "RETINA", "RETINAL", "OPTIC", "DISC", "NERVE",
    "EYE", "EYES", "OD", "OS", "OU", "LEFT", "RIGHT", "BILATERAL",
    # chest anatomy, projections and positioning
    "CHEST", "THORAX", "LUNG", "LUNGS", "RIBS", "PA", "AP", "LAT", "LATERAL", "LL", "RL", "FRONTAL",
    "DECUBITUS", "LORDOTIC", "OBLIQUE", "VIEW", "VIEWS", "PORTABLE", "MOBILE", "ERECT", "UPRIGHT", "SUPINE",
    "SEMI-ERECT", "INSPIRATION", "EXPIRATION", "SINGLE", "ROUTINE", "1V", "2V",
})
# fmt: on
_WORD = re.compile(r"[A-Za-z0-9-]+")
_CODE = re.compile(r"[^A-Z0-9 _]")
_AGE = re.compile(r"^(\d{1,3})([DWMY])$")


def age_band(*, patient_age: str = "", birth_date: str = "", study_date: str = "") -> str:
    """The age band of the patient at the study, or "" when the header does not tell."""
    years = _years_from_age(patient_age)
    if years is None:
        years = _years_between(birth_date, study_date)
    if years is None or years < 0 or years > 150:
        return ""
    if years < 18:
        return "0-17"
    if years < 40:
        return "18-39"
    if years < 65:
        return "40-64"
    if years < 90:
        return "65-89"
    return "90+"


def sex_code(patient_sex: str) -> str:
    value = (patient_sex or "").strip().upper()[:1]
    return value if value in SEXES else ""


def coded(value: object, *, limit: int = 16) -> str:
    """A coded string (CS) reduced to upper-case letters, digits, space and ``_``."""
    text = _CODE.sub("", str(value or "").strip().upper().replace("\\", " "))
    return " ".join(text.split())[:limit]


def study_description(*, descriptions: tuple[str, ...], modality: str = "", body_part: str = "", view: str = "") -> str:
    """The de-identified description (see the module docstring)."""
    for text in descriptions:
        kept: list[str] = []
        for word in _WORD.findall(str(text or "").upper()):
            if word in DESCRIPTION_VOCABULARY and word not in kept:
                kept.append(word)
        if kept:
            return _fit(kept)
    return _fit([w for w in (coded(modality), coded(body_part), coded(view)) if w])


def _fit(words: list[str]) -> str:
    out = ""
    for word in words:
        candidate = f"{out} {word}".strip()
        if len(candidate) > DESCRIPTION_MAX:
            break
        out = candidate
    return out


def _years_from_age(value: str) -> float | None:
    match = _AGE.match((value or "").strip().upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return number / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[unit]


def _parse_date(value: str) -> date | None:
    text = (value or "").strip().replace(".", "")[:8]  # DA is YYYYMMDD (ACR-NEMA wrote dots)
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _years_between(birth: str, on: str) -> int | None:
    born, seen = _parse_date(birth), _parse_date(on)
    if born is None or seen is None:
        return None
    return seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
