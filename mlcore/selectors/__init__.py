"""mlcore reads: the class catalogue (what the clinical side may know of the classes),
routing's view of the registry mirror, and the figures of the ML pages."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

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


# --- operating points (issue 11, item 5) ------------------------------------------------------

def applied_thresholds(*, name: str, version: str) -> dict[str, float]:
    """The thresholds a version flags urgent classes with: per class, its newest *applied*
    operating point ({} = the default rule, urgent-class probability mass >= 0.5)."""
    from mlcore.models import OperatingPoint

    out: dict[str, float] = {}
    rows = (OperatingPoint.objects.filter(name=name, version=version, applied_at__isnull=False)
            .order_by("class_key", "-applied_at", "-id").values_list("class_key", "threshold"))
    for key, threshold in rows:
        out.setdefault(key, threshold)
    return out


def urgency_priority(probabilities: dict[str, float], *, thresholds: dict[str, float] | None = None,
                     out_of_scope: bool = False) -> float:
    """0..1 worklist priority of one prediction (urgent when >= 0.5) under a version's
    thresholds (``applied_thresholds``); see mlcore.ml.evaluation.operating_points."""
    from mlcore.ml.urgency import urgency_priority as rule

    return rule(probabilities, urgent_keys=URGENT_KEYS, thresholds=thresholds, out_of_scope=out_of_scope)


def operating_points(*, name: str, version: str) -> list:
    """Every operating point of a version, proposed or applied, newest first."""
    from mlcore.models import OperatingPoint

    return list(OperatingPoint.objects.filter(name=name, version=version).select_related("change_record")
                .order_by("-created_at", "class_key"))


def operating_points_proposed(*, name: str, version: str, champion_version: str) -> list:
    """The newest unapplied proposal per class of ``version`` against ``champion_version``:
    what "apply the thresholds" on the promotion form would apply."""
    from mlcore.models import OperatingPoint

    newest: dict[str, Any] = {}
    for point in (OperatingPoint.objects.filter(name=name, version=version, champion_version=champion_version,
                                                applied_at__isnull=True).order_by("class_key", "-created_at", "-id")):
        newest.setdefault(point.class_key, point)
    return [newest[k] for k in sorted(newest)]


# --- blinded reads (issue 11, item 6) ---------------------------------------------------------

DECISIVE_VERDICTS = ("agree", "corrected")


def automation_bias_report(*, name: str) -> list[dict[str, Any]]:
    """Agreement on blinded vs AI-shown reads per version and AI class, with the confirmation
    inflation (mlcore.ml.evaluation.blinding). A blinded read is scored on its first, blinded
    verdict (``blinded_verdict``), whatever the reader amended after the reveal; uncertain and
    non-diagnostic verdicts say nothing about the model and are left out, and so are shadow
    outcomes (no reader ever saw a shadow's answer: it cannot bias them)."""
    from mlcore.ml.evaluation.blinding import automation_bias

    rows = []
    for version, cls, blinded, verdict, first in (
            ReviewOutcome.objects.filter(model_name=name).exclude(arm="shadow")
            .values_list("model_version", "predicted_class", "blinded", "verdict", "blinded_verdict")):
        used = (first or verdict) if blinded else verdict
        if used in DECISIVE_VERDICTS:
            rows.append((version, cls, blinded, used == "agree"))
    return automation_bias(rows)


def blinded_reads_summary(*, name: str) -> dict[str, int]:
    """How many blinded outcomes there are and how many changed after the reveal."""
    qs = ReviewOutcome.objects.filter(model_name=name, blinded=True)
    changed = sum(1 for v, first in qs.values_list("verdict", "blinded_verdict") if first and v != first)
    return {"blinded_outcomes": qs.count(), "changed_after_reveal": changed}
