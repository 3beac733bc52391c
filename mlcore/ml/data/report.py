"""Split report: what a dataset version holds and the proof that its splits are clean.

``patients_shared_between_splits`` is always *computed from the rows*, never carried over
from the builder's intent, so the data dashboard and the training job can trust it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data.manifest import SPLITS, ManifestRow

_MARKDOWN_LIST_LIMIT = 20


@dataclass
class SplitReport:
    counts: dict[str, dict[str, int]]
    totals: dict[str, int]
    patients: dict[str, int]
    patients_shared_between_splits: int
    shared_patients: list[str] = field(default_factory=list)
    duplicates_dropped: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    conflicting_label_dropped: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    synthetic_images: int = 0
    seed: int | None = None

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def class_totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for per_class in self.counts.values():
            out.update(per_class)
        return {k: out[k] for k in self._classes()}

    def _classes(self) -> list[str]:
        present = {c for per_class in self.counts.values() for c, n in per_class.items() if n}
        return [k for k in CLASS_KEYS if k in present]

    @classmethod
    def from_rows(cls, rows: Iterable[ManifestRow], **build_facts: Any) -> SplitReport:
        """Count ``rows``; ``build_facts`` are the builder's figures (duplicates, skipped, seed)."""
        rows = list(rows)
        present = {r.class_key for r in rows}
        classes = [k for k in CLASS_KEYS if k in present]
        counts = {s: dict.fromkeys(classes, 0) for s in SPLITS}
        patients_in: dict[str, set[str]] = defaultdict(set)
        splits_of: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            counts[r.split][r.class_key] += 1
            patients_in[r.split].add(r.patient_key)
            splits_of[r.patient_key].add(r.split)
        shared = sorted(p for p, splits in splits_of.items() if len(splits) > 1)
        return cls(
            counts=counts,
            totals={s: sum(counts[s].values()) for s in SPLITS},
            patients={s: len(patients_in[s]) for s in SPLITS},
            patients_shared_between_splits=len(shared),
            shared_patients=shared,
            sources=dict(sorted(Counter(r.source for r in rows).items())),
            synthetic_images=sum(1 for r in rows if r.synthetic),
            **build_facts,
        )

    def build_facts(self) -> dict[str, Any]:
        """The figures only the builder knows (they cannot be recounted from the manifest)."""
        return {
            "duplicates_dropped": self.duplicates_dropped,
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
            "conflicting_label_dropped": self.conflicting_label_dropped,
            "dropped": [list(x) for x in self.dropped],
            "skipped": [list(x) for x in self.skipped],
            "seed": self.seed,
        }

    @staticmethod
    def facts_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "duplicates_dropped": int(data.get("duplicates_dropped", 0)),
            "exact_duplicates": int(data.get("exact_duplicates", 0)),
            "near_duplicates": int(data.get("near_duplicates", 0)),
            "conflicting_label_dropped": int(data.get("conflicting_label_dropped", 0)),
            "dropped": [(str(p), str(r)) for p, r in data.get("dropped", [])],
            "skipped": [(str(p), str(r)) for p, r in data.get("skipped", [])],
            "seed": data.get("seed"),
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped"] = [list(x) for x in self.dropped]
        out["skipped"] = [list(x) for x in self.skipped]
        out["total"] = self.total
        out["class_totals"] = self.class_totals
        return out

    def to_markdown(self) -> str:
        classes = self._classes()
        lines = [
            "| split | " + " | ".join(classes) + " | total | patients |",
            "|---|" + "---:|" * (len(classes) + 2),
        ]
        for s in SPLITS:
            cells = [str(self.counts.get(s, {}).get(c, 0)) for c in classes]
            lines.append(
                f"| {s} | " + " | ".join(cells) + f" | {self.totals.get(s, 0)} | "
                f"{self.patients.get(s, 0)} |"
            )
        ct = self.class_totals
        lines.append(
            "| **all** | " + " | ".join(str(ct[c]) for c in classes) + f" | {self.total} | |"
        )
        lines += [
            "",
            f"- patients shared between splits: **{self.patients_shared_between_splits}**",
            f"- duplicates dropped: {self.duplicates_dropped} (exact {self.exact_duplicates}, "
            f"near {self.near_duplicates}, conflicting labels {self.conflicting_label_dropped})",
            f"- skipped (unreadable): {len(self.skipped)}",
            f"- synthetic images: {self.synthetic_images}",
        ]
        if self.seed is not None:
            lines.append(f"- split seed: {self.seed}")
        for title, items in (("Skipped", self.skipped), ("Dropped duplicates", self.dropped)):
            if items:
                lines += ["", f"{title}:"]
                lines += [f"- `{p}`: {r}" for p, r in items[:_MARKDOWN_LIST_LIMIT]]
                if len(items) > _MARKDOWN_LIST_LIMIT:
                    lines.append(f"- ... and {len(items) - _MARKDOWN_LIST_LIMIT} more")
        return "\n".join(lines) + "\n"
