"""De-identify a DICOM dataset in place (PS3.15 Basic Application Level Confidentiality
Profile) and derive the keyed pseudonyms that keep studies of one patient together.

Both the patient pseudonym and the UID remap are HMAC-SHA256 under the deployment's secret
``pseudonym_key``: deterministic (re-ingesting the same study gives the same pseudonym and the
same UIDs, so duplicates collapse and follow-up studies group), yet not reversible or
brute-forceable from public UIDs and MRN formats without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from clinical.ingest.deid_profile import ALLOWED, KEPT_PRIVATE_TAGS, STANDARD_UID_KEYWORDS

DICOM_UID_ROOT = "1.2.840.10008."
MIN_KEY_BYTES = 16
MAX_UID_LENGTH = 64
DEIDENTIFICATION_METHOD = "Basic Profile allow-list; keyed pseudonym; keyed UID remap"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# Dummy values per VR for action D: valid for the VR, obviously not real.
_DUMMY: dict[str, Any] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
}
_DUMMY_TEXT = "ANONYMIZED"
BURNED_IN_WARNING = (
    "Burned In Annotation is YES: text in the pixels may identify the patient and is "
    "not removed by de-identification"
)
_UID_ROOT_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_key(pseudonym_key: bytes) -> None:
    """Refuse keys too short to resist guessing; a missing key is a deployment bug."""
    if not isinstance(pseudonym_key, bytes | bytearray) or len(pseudonym_key) < MIN_KEY_BYTES:
        raise ValueError(f"pseudonym_key must be at least {MIN_KEY_BYTES} bytes of secret")


def check_uid_root(uid_root: str) -> None:
    """Refuse a UID root that cannot produce valid, collision-resistant UIDs (a config bug)."""
    if not _UID_ROOT_PATTERN.match(uid_root):
        raise ValueError(f"uid_root {uid_root!r} is not a dotted-decimal UID root")
    if MAX_UID_LENGTH - len(uid_root) - 1 < 16:
        raise ValueError(f"uid_root {uid_root!r} leaves fewer than 16 digits for the hash")


def patient_pseudonym(*, pseudonym_key: bytes, patient_id: str, issuer: str, study_uid: str) -> str:
    """``"pt-" + HMAC-SHA256(key, issuer|PatientID)[:20 hex]``; without a Patient ID the
    study is its own group (keyed on its Study Instance UID)."""
    check_key(pseudonym_key)
    patient_id = patient_id.strip()
    message = f"{issuer.strip()}|{patient_id}" if patient_id else f"study-uid|{study_uid}"
    digest = hmac.new(pseudonym_key, message.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"pt-{digest[:20]}"


def remap_uid(uid: str, *, pseudonym_key: bytes, uid_root: str = "2.25") -> str:
    """A new UID derived from ``uid`` by keyed hash: same input, same output, <= 64 chars.

    Under ``2.25`` the 128 hash bits are shaped as an RFC 9562 version-8 UUID so the result is
    a valid UUID-derived UID (PS3.5 B.2); under an organisation root the decimal hash is
    truncated to fit 64 characters.
    """
    check_uid_root(uid_root)
    digest = hmac.new(pseudonym_key, b"uid|" + uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    if uid_root == "2.25":
        value = bytearray(digest[:16])
        value[6] = (value[6] & 0x0F) | 0x80  # version 8
        value[8] = (value[8] & 0x3F) | 0x80  # RFC variant
        return f"2.25.{int.from_bytes(value, 'big')}"
    digits = MAX_UID_LENGTH - len(uid_root) - 1
    return f"{uid_root}.{int.from_bytes(digest, 'big') % 10**digits}"


def deidentify(
    ds: Dataset, *, pseudonym_key: bytes, pseudonym: str, uid_root: str = "2.25",
    kept_private: frozenset[tuple[str, int]] = KEPT_PRIVATE_TAGS,
) -> list[str]:
    """Reduce ``ds`` (in place, every sequence at every depth) to the allow-list of
    ``clinical.ingest.deid_profile``, applying the Basic Profile action of what is kept.

    ``kept_private``: (Private Creator, element offset) pairs kept as they are (sequences among
    them cleaned like any other); every other private tag is removed.

    Returns warnings that need a human (e.g. burned-in annotation the profile cannot remove).
    """
    warnings: list[str] = []
    if burned_in_annotation(ds):
        warnings.append(BURNED_IN_WARNING)
    _clean(ds, pseudonym_key=pseudonym_key, uid_root=uid_root, kept_private=kept_private)

    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    # Dates were removed or replaced, not shifted (PS3.3 C.12.1.1.7).
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return warnings


def burned_in_annotation(ds: Dataset) -> bool:
    """True when the object says text that may identify the patient is burned into the pixels."""
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


def _clean(ds: Dataset, *, pseudonym_key: bytes, uid_root: str, kept_private: frozenset[tuple[str, int]]) -> None:
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private:
            action = "K" if _private_kept(ds, elem, kept_private) else None
            if action is not None and elem.VR == "SQ":
                for item in elem.value:
                    _clean(item, pseudonym_key=pseudonym_key, uid_root=uid_root, kept_private=kept_private)
            if action is not None:
                continue
        else:
            action = ALLOWED.get(int(tag))
        if action is None:
            # Not on the allow-list: private, curve/overlay, retired, unknown, or an
            # identifying attribute of Table E.1-1 -- removed.
            del ds[tag]
            continue
        if elem.VR == "UN":
            # A value we cannot interpret is one we cannot vouch for.
            del ds[tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action == "D" and elem.VR not in ("SQ", "UI"):
            elem.value = _dummy(elem)
        elif elem.VR == "UI":
            if action in ("U", "D") or _is_instance_uid(elem):
                elem.value = _remap_values(elem.value, pseudonym_key, uid_root)
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, pseudonym_key=pseudonym_key, uid_root=uid_root, kept_private=kept_private)


def _private_kept(ds: Dataset, elem: DataElement, kept: frozenset[tuple[str, int]]) -> bool:
    if not kept:
        return False
    tag = elem.tag
    if tag.is_private_creator:  # (gggg,00xx): kept when an element of its block may be
        return str(elem.value or "").strip() in {creator for creator, _ in kept}
    creator = ds.get((tag.group << 16) | (tag.element >> 8))
    return creator is not None and (str(creator.value or "").strip(), tag.element & 0xFF) in kept


def _is_instance_uid(elem: DataElement) -> bool:
    if elem.keyword in STANDARD_UID_KEYWORDS:
        return False
    values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
    return any(v and not str(v).startswith(DICOM_UID_ROOT) for v in values)


def _remap_values(value: Any, key: bytes, uid_root: str) -> Any:
    def one(uid: Any) -> Any:
        if not uid or str(uid).startswith(DICOM_UID_ROOT):
            return uid
        return remap_uid(str(uid), pseudonym_key=key, uid_root=uid_root)

    if isinstance(value, MultiValue | list):
        return [one(v) for v in value]
    return one(value)


def _dummy(elem: DataElement) -> Any:
    if elem.VR == "SQ":
        return Sequence()
    if elem.VR in _DUMMY:
        return _DUMMY[elem.VR]
    if elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b""
    return _DUMMY_TEXT
