"""mlcore reads: the class catalogue (what the clinical side may know of the classes),
routing's view of the registry mirror, and the figures of the ML pages."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import QuerySet

from mlcore.ml.classes import CLASS_BY_KEY, CLASS_KEYS, CLASSES, URGENT_KEYS, ClassInfo
from mlcore.models import ModelAlias, ModelVersion, ReviewOutcome


def class_catalogue() -> tuple[ClassInfo, ...]:
    """The nine classes in logit order: key, display name, scope ("cxr"/"oct"), urgency."""
    return CLASSES


def class_keys() -> tuple[str, ...]:
    return CLASS_KEYS


def class_display_name(key: str) -> str:
    """The clinical name of ``key``; an unknown key is shown as it is."""
    info = CLASS_BY_KEY.get(key)
    return info.display_name if info else key


def class_scope(key: str) -> str:
    """The scope ("cxr" or "oct") a class belongs to; ``KeyError`` for an unknown key."""
    return CLASS_BY_KEY[key].modality


def urgent_class_keys() -> frozenset[str]:
    return URGENT_KEYS


@dataclass
class Agreement:
    model_name: str
    model_version: str
    reviews: int = 0
    agreed: int = 0
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviews if self.reviews else None


def agreement_by_version(*, model_name: str | None = None) -> list[Agreement]:
    """Share of decisive reviews (agree or corrected) that agreed, overall and per predicted class.

    Uncertain and non-diagnostic verdicts say nothing about the model and are left out.
    """
    qs = ReviewOutcome.objects.filter(verdict__in=["agree", "corrected"])
    if model_name:
        qs = qs.filter(model_name=model_name)
    counts: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for name, version, predicted, verdict in qs.values_list(
        "model_name", "model_version", "predicted_class", "verdict"
    ):
        cell = counts[(name, version)][predicted]
        cell[0] += 1
        cell[1] += verdict == "agree"
    out = []
    for (name, version), classes in sorted(counts.items()):
        agg = Agreement(name, version)
        for cls, (n, agreed) in sorted(classes.items()):
            agg.reviews += n
            agg.agreed += agreed
            agg.per_class[cls] = {"reviews": n, "agreed": agreed, "rate": agreed / n}
        out.append(agg)
    return out


def model_versions(*, name: str) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(name=name).prefetch_related("aliases").order_by("-registered_at")


def synthetic_versions(*, name: str) -> frozenset[str]:
    """Versions of ``name`` trained on synthetic phantoms: labelled so wherever shown."""
    return frozenset(ModelVersion.objects.filter(name=name, synthetic=True).values_list("version", flat=True))


def alias_map(*, name: str) -> dict[str, str]:
    return {
        a.alias: a.model_version.version
        for a in ModelAlias.objects.select_related("model_version").filter(name=name)
    }
