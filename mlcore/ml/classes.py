"""The nine triage classes (DESIGN.md section 2).

Keys keep the original dataset layout so that models and data sets stay interchangeable;
display names are the clinically right ones (the OCT classes are retinal, not lung).
The order of ``CLASS_KEYS`` is the order of every model's output logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Modality = Literal["cxr", "oct"]


@dataclass(frozen=True, slots=True)
class ClassInfo:
    key: str
    display_name: str
    modality: Modality
    urgent: bool


CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo("lung-covid", "COVID-19 pneumonia", "cxr", True),
    ClassInfo("lung-normal", "No finding (CXR)", "cxr", False),
    ClassInfo("lung-opacity", "Lung opacity (non-COVID)", "cxr", True),
    ClassInfo("lung-tuberculosis", "Tuberculosis", "cxr", True),
    ClassInfo("lung-viral-pneumonia", "Viral pneumonia", "cxr", True),
    ClassInfo("lung-oct-cnv", "Choroidal neovascularisation", "oct", True),
    ClassInfo("lung-oct-dme", "Diabetic macular oedema", "oct", True),
    ClassInfo("lung-oct-drusen", "Drusen", "oct", False),
    ClassInfo("lung-oct-normal", "No finding (OCT)", "oct", False),
)

CLASS_KEYS: tuple[str, ...] = tuple(c.key for c in CLASSES)
CLASS_BY_KEY: dict[str, ClassInfo] = {c.key: c for c in CLASSES}
URGENT_KEYS: frozenset[str] = frozenset(c.key for c in CLASSES if c.urgent)
NUM_CLASSES = len(CLASSES)


def modality_of(key: str) -> Modality:
    return CLASS_BY_KEY[key].modality
