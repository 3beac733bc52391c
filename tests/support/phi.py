"""PHI planted into real DICOM objects, and the checks that none of it survives.

``table_e1_1()`` reads ``ps3_15_table_e1_1.json`` beside this file: DICOM PS3.15 (2024b)
Table E.1-1, column "Basic Prof.", generated once from the machine-readable copy shipped by
dicom-anonymizer (see the file's ``generated_from``). It is independent of the allow-list in
``clinical.ingest.deid_profile``, which the tests check against it.

Every planted value is distinctive (``PHI0123``, a unique date, a fresh UID, ...) so a leak
is found by searching any output - stored bytes, HTML, JSON, logs, task arguments - for it.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

TABLE_PATH = Path(__file__).with_name("ps3_15_table_e1_1.json")
# Groups that cannot sit in a dataset's body at any depth (file meta is rewritten anyway) or
# only at its end / top level (digital signatures, trailing padding).
_TOP_LEVEL_ONLY = (0x0000, 0xFFFA, 0xFFFC)
_NEVER_PLANTED = (0x0002,)


@dataclass(frozen=True)
class TableRow:
    tag: int
    name: str
    actions: frozenset[str]  # e.g. {"X", "Z", "D"} for "X/Z/D"; "U*" kept as written
    mask: int | None = None

    @property
    def concrete_tag(self) -> int:
        """A real tag for the row: repeating groups (50xx curves, 60xx overlays) as group xx=02."""
        if self.mask is None:
            return self.tag
        return self.tag | 0x00020000

    def matches(self, tag: int) -> bool:
        if self.mask is None:
            return tag == self.tag
        return (tag & self.mask) == self.tag


@cache
def table_e1_1() -> tuple[TableRow, ...]:
    data = json.loads(TABLE_PATH.read_text())
    rows = []
    for row in data["attributes"]:
        mask = int(row["mask"], 16) if "mask" in row else None
        rows.append(TableRow(int(row["tag"], 16), row["name"], frozenset(row["action"].split("/")), mask))
    return tuple(rows)


def table_row_for(tag: int) -> TableRow | None:
    return next((r for r in table_e1_1() if r.matches(tag)), None)


@dataclass
class Planted:
    """What was planted: marker strings to search for, and the original value per tag path."""

    markers: set[str] = field(default_factory=set)
    top_level: dict[int, object] = field(default_factory=dict)
    counter: int = 0

    def next(self) -> int:
        self.counter += 1
        return self.counter


def _vr(tag: int) -> str:
    vr = dictionary_VR(tag) if dictionary_has_tag(tag) else "OB"
    return vr.split(" or ")[0]


def value_for(vr: str, n: int, planted: Planted) -> object:
    """A distinctive, VR-valid value; textual ones are remembered as markers."""
    tag_text = f"PHI{n:04d}"
    d = date(1931, 1, 1) + timedelta(days=n)
    frac = f"{100000 + n:06d}"
    text: str | None
    if vr == "PN":
        text = f"Phi{n:04d}^Person"
        value: object = text
    elif vr in ("SH", "CS", "AE"):
        value = text = tag_text
    elif vr in ("LO", "ST", "LT", "UT", "UC"):
        value = text = f"{tag_text} about Jane Doe"
    elif vr == "DA":
        value = text = d.strftime("%Y%m%d")
    elif vr == "TM":
        value = text = f"{n % 24:02d}{n % 60:02d}07.{frac}"
    elif vr == "DT":
        value = text = d.strftime("%Y%m%d") + f"120000.{frac}"
    elif vr == "AS":
        value, text = f"{n % 90 + 10:03d}Y", None
    elif vr == "DS":
        value = text = f"7{n:04d}.25"
    elif vr == "IS":
        value = text = f"8{n:04d}1"
    elif vr == "UI":
        value = text = generate_uid()
    elif vr == "UR":
        value = text = f"http://phi{n:04d}.example.org/"
    elif vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        value, text = 1000 + n, None
    elif vr in ("FL", "FD"):
        value, text = 1000.5 + n, None
    elif vr == "AT":
        value, text = 0x00100010, None
    else:  # OB, OW, UN, OD, OF, OL, OV
        value = (tag_text + "BIN").encode()
        text = tag_text + "BIN"
    if text is not None:
        planted.markers.add(text)
    return value


def phi_item(planted: Planted) -> Dataset:
    """A sequence item with a person, a description and a nested observer sequence."""
    item = Dataset()
    item.PersonName = value_for("PN", planted.next(), planted)
    item.ContributionDescription = value_for("ST", planted.next(), planted)
    observer = Dataset()
    observer.VerifyingObserverName = value_for("PN", planted.next(), planted)
    observer.VerifyingOrganization = value_for("LO", planted.next(), planted)
    item.VerifyingObserverSequence = Sequence([observer])
    return item


def plant(ds: Dataset, tag: int, planted: Planted, *, record: bool = False) -> None:
    """Set ``tag`` in ``ds`` to a distinctive value of its VR (a sequence gets a PHI item).
    An attribute already there keeps its value, which becomes a marker itself."""
    tag = Tag(tag)
    if tag in ds:
        value = ds[tag].value
        if ds[tag].VR != "SQ" and value not in (None, ""):
            text = str(value)
            if len(text) >= 4:
                planted.markers.add(text)
        if record:
            planted.top_level[int(tag)] = value
        return
    vr = _vr(tag)
    value = Sequence([phi_item(planted)]) if vr == "SQ" else value_for(vr, planted.next(), planted)
    ds.add_new(tag, vr, value)
    if record:
        planted.top_level[int(tag)] = value


def plant_table(ds: Dataset, planted: Planted, *, nested_in: tuple[str, ...] = ("ReferencedImageSequence",)) -> None:
    """Every attribute of Table E.1-1 at the top level of ``ds``, and (those that may sit in an
    item) again inside an item of each sequence named in ``nested_in`` and two levels down."""
    for row in table_e1_1():
        tag = row.concrete_tag
        if tag >> 16 in _NEVER_PLANTED:
            continue
        plant(ds, tag, planted, record=True)
    for keyword in nested_in:
        outer = Dataset()
        inner = Dataset()
        for row in table_e1_1():
            tag = row.concrete_tag
            if tag >> 16 in _NEVER_PLANTED + _TOP_LEVEL_ONLY or row.mask is not None:
                continue
            plant(outer, tag, planted)
            plant(inner, tag, planted)
        outer.ReferencedImageSequence = Sequence([inner]) if keyword != "ReferencedImageSequence" else Sequence()
        if keyword == "ReferencedImageSequence":
            outer.SourceImageSequence = Sequence([inner])
        existing = ds.get(keyword)
        if existing is not None and ds[keyword].VR == "SQ":
            existing.append(outer)
        else:
            setattr(ds, keyword, Sequence([outer]))


# My own corpus: PHI-bearing attributes a deny list misses (outside Table E.1-1 or only in
# its nested forms), private blocks, and nested sequences.
CORPUS_KEYWORDS: tuple[str, ...] = (
    "VerifyingObserverName", "PersonName", "ContributionDescription", "VerifyingObserverSequence",
    "VerifyingOrganization", "VerificationDateTime", "AuthorObserverSequence", "ParticipantSequence",
    "CustodialOrganizationSequence", "ContentSequence", "TextValue", "PersonAddress",
    "PersonTelephoneNumbers", "PersonTelecomInformation", "InstitutionName", "InstitutionAddress",
    "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar",
    "PatientAlternativeCalendar", "PatientSpeciesDescription", "PatientBreedDescription",
    "ResponsiblePersonRole", "StrainDescription", "StrainNomenclature", "GeneticModificationsDescription",
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolName", "ClinicalTrialSiteName",
    "ClinicalTrialCoordinatingCenterName", "ClinicalTrialSubjectID", "ConfidentialityCode",
    "EncryptedAttributesSequence", "HL7StructuredDocumentReferenceSequence", "OriginalAttributesSequence",
    "DeidentificationMethod", "RequestedProcedureCodeSequence", "ProcedureCodeSequence",
    "PerformedProcedureCodeSequence", "ScheduledProcedureStepSequence", "RequestAttributesSequence",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "ReferringPhysicianAddress", "ConsultingPhysicianName", "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "PerformingPhysicianName", "RequestingPhysician",
    "ScheduledPerformingPhysicianName", "HumanPerformerName", "ContentCreatorName", "ReviewerName",
    "SpecimenDescriptionSequence", "SpecimenIdentifier", "ContainerIdentifier", "StudyDescription",
    "SeriesDescription", "ProtocolName", "ImageComments", "DerivationDescription", "FrameComments",
    "StorageMediaFileSetID", "ReferencedFileID", "IssuerOfPatientIDQualifiersSequence",
    "PatientTelecomInformation", "MedicalAlerts", "Allergies", "PatientComments", "AdmissionID",
    "AdmittingDiagnosesDescription", "CurrentPatientLocation", "PatientState",
)
PRIVATE_CREATORS = ("ACME PHI 1.0", "SIEMENS CSA HEADER", "GEMS_PATI_01")


def plant_corpus(ds: Dataset, planted: Planted) -> int:
    """Plant ``CORPUS_KEYWORDS``, three private blocks (one with a nested sequence holding a
    person) and a private tag inside a kept sequence item; returns how many were planted."""
    count = 0
    for keyword in CORPUS_KEYWORDS:
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        plant(ds, tag, planted)
        count += 1
    for offset, creator in enumerate(PRIVATE_CREATORS):
        block = ds.private_block(0x0009 + 2 * offset, creator, create=True)
        block.add_new(0x10, "LO", value_for("LO", planted.next(), planted))
        block.add_new(0x11, "PN", value_for("PN", planted.next(), planted))
        block.add_new(0x12, "SQ", Sequence([phi_item(planted)]))
        count += 3
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "51185008", "SCT", "Chest"
    private = code.private_block(0x0011, "ACME PHI 1.0", create=True)
    private.add_new(0x01, "LO", value_for("LO", planted.next(), planted))
    code.add_new(tag_for_keyword("PersonName"), "PN", value_for("PN", planted.next(), planted))
    ds.AnatomicRegionSequence = Sequence([code])
    count += 2
    return count


def read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


_NUMERIC = re.compile(r"[0-9.]+")


def leaks(text: str | bytes, planted: Planted) -> list[str]:
    """Planted markers (>= 6 characters) found in ``text``, case-insensitively.

    A marker made only of digits and dots (IS, DS, DA, TM, DT values) counts only as a whole
    number: inside a longer run of digits and dots it is a chance match within one of the
    UIDs the de-identification generates (random-looking digit strings; with hundreds of
    numeric markers and thousands of UID digits such a match happened in about one run in
    ten), not a kept value, which DICOM, JSON and HTML all delimit with something else."""
    haystack = text.decode("latin-1") if isinstance(text, bytes) else text
    haystack = haystack.lower()
    found = []
    for marker in planted.markers:
        if len(marker) < 6 or marker.lower() not in haystack:
            continue
        if _NUMERIC.fullmatch(marker) and not re.search(rf"(?<![0-9.]){re.escape(marker)}(?![0-9.])", haystack):
            continue
        found.append(marker)
    return sorted(found)


def assert_deidentified(stored: bytes, planted: Planted, *, pseudonym: str, allowed: dict[int, str]) -> None:
    """The stored copy holds only allow-listed attributes, no private tag, no person name but
    the pseudonym, no planted marker, and every Table E.1-1 attribute planted at the top level
    is gone or treated by an action the table permits for it."""
    ds = read(stored)
    found = leaks(stored, planted)
    assert found == [], f"{len(found)} planted values left in the stored copy: {found[:20]}"
    for elem in ds.iterall():
        assert not elem.tag.is_private, f"private tag {elem.tag} kept"
        assert int(elem.tag) in allowed, f"{elem.tag} {elem.keyword or '(unknown)'} is not on the allow-list"
        if elem.VR == "PN":
            assert str(elem.value or "") in ("", pseudonym), f"person name kept in {elem.keyword}"
    for tag, original in planted.top_level.items():
        row = table_row_for(tag)
        assert row is not None
        if tag not in ds:
            continue  # X: removed (never less private than what the table asks)
        elem = ds[tag]
        label = f"{row.name} {Tag(tag)} actions {'/'.join(sorted(row.actions))}"
        if elem.VR == "SQ":
            if len(elem.value) == 0:
                assert row.actions & {"Z", "X"}, f"{label}: emptied"
            else:
                assert row.actions & {"D", "U*"}, f"{label}: kept with its items cleaned"
            continue
        value = elem.value
        if value in (None, "", b""):
            assert "Z" in row.actions, f"{label}: emptied but Z is not permitted"
        elif keyword_for_tag(tag) in ("PatientName", "PatientID"):
            assert str(value) == pseudonym and row.actions & {"Z", "D"}, label
        else:
            assert str(value) != str(original), f"{label}: kept unchanged"
            assert row.actions & ({"U"} if elem.VR == "UI" else {"D"}), f"{label}: replaced"


def write(ds: Dataset) -> bytes:
    """Part 10 bytes, written element by element: ``dcmwrite`` refuses command-group (0000)
    elements in a dataset, which a careless sender can still put there."""
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian = True
    body.is_implicit_VR = ds.file_meta.TransferSyntaxUID.is_implicit_VR
    write_dataset(body, ds)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + body.getvalue()
