"""How a study's place on the worklist follows from its images' predictions."""

from __future__ import annotations

from clinical.ingest.results import MODALITY_FOR_RASTER
from clinical.models import Prediction, Study
from mlcore.selectors import applied_thresholds, urgency_priority, urgent_class_keys

# Where a blinded read sits while the AI is hidden: a constant (so its place says nothing
# about the AI), at the urgent band's lower edge: after every AI-urgent study, ahead of the
# AI-routine ones, by arrival time among the blinded; the maximum-wait escalation still applies.
BLINDED_PRIORITY = 0.5


def urgent_probability(probabilities: dict[str, float]) -> float:
    return float(sum(p for k, p in probabilities.items() if k in urgent_class_keys()))


def ai_hidden(study: Study) -> bool:
    """A blinded read whose verdict is not saved yet: readers and integrations see no AI."""
    return bool(study.blinded_read and study.ai_revealed_at is None)


def prediction_priority(prediction: Prediction, thresholds_of: dict | None = None) -> float:
    """The worklist priority of one prediction under the applied operating points of the
    version that made it (the default rule when it has none)."""
    cache = thresholds_of if thresholds_of is not None else {}
    key = (prediction.model_name, prediction.model_version)
    if key not in cache:
        cache[key] = applied_thresholds(name=prediction.model_name, version=prediction.model_version)
    return urgency_priority(prediction.probabilities, thresholds=cache[key], out_of_scope=False)


def study_triage_fields(study: Study) -> dict:
    images = list(study.images.prefetch_related("predictions", "reviews"))
    latest = [img.latest_prediction() for img in images]
    if not images or any(p is None or p.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING)
                         for p in latest):
        return {"status": Study.Status.PROCESSING}
    if any(p.status == Prediction.Status.FAILED for p in latest):
        return {"status": Study.Status.FAILED}
    out_of_scope = any(p.out_of_scope for p in latest)
    reviewed = all(img.latest_review() is not None for img in images)
    status = Study.Status.REVIEWED if reviewed else Study.Status.AWAITING_REVIEW
    if ai_hidden(study):
        # Nothing of the AI on the study row while blinded (worklist order, filters, API
        # summary); the reveal recomputes these fields.
        return {"status": status, "triage_priority": BLINDED_PRIORITY, "top_class": "", "out_of_scope": False,
                **_inferred_scope(study, latest)}
    thresholds_of: dict = {}
    priorities = [prediction_priority(p, thresholds_of) for p in latest]
    # Out-of-scope input goes first: a human must look at what the model cannot judge.
    priority = 1.0 if out_of_scope else max(priorities)
    top = latest[max(range(len(latest)), key=lambda i: priorities[i])].top_class
    return {
        "status": status,
        "triage_priority": round(priority, 6),
        "top_class": top,
        "out_of_scope": out_of_scope,
        **_inferred_scope(study, latest),
    }


# What an inferred scope makes of a study that came without a modality (PNG/JPEG: "OT").
INFERRED_MODALITY = {Study.Scope.CXR: "DX", Study.Scope.OCT: "OPT"}


def _inferred_scope(study: Study, latest: list[Prediction]) -> dict:
    """A header's scope stands, and so does a header that puts the study outside the scope
    (its warning); otherwise the model's decision becomes the study's scope, and a raster
    upload ("OT") gets the modality that scope implies, shown as inferred."""
    if study.scope_source == Study.ScopeSource.HEADER or study.scope_warning:
        return {}
    decided = {p.scope for p in latest if p.scope}
    scope = decided.pop() if len(decided) == 1 else Study.Scope.UNKNOWN
    inferred = scope != Study.Scope.UNKNOWN
    fields = {"scope": scope, "scope_source": Study.ScopeSource.MODEL if inferred else Study.ScopeSource.NONE}
    if study.modality == MODALITY_FOR_RASTER or study.scope_source == Study.ScopeSource.MODEL:
        fields["modality"] = INFERRED_MODALITY.get(scope, MODALITY_FOR_RASTER)
    return fields
