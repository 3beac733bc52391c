"""How a study's place on the worklist follows from its images' predictions."""

from __future__ import annotations

from clinical.ingest.results import MODALITY_FOR_RASTER
from clinical.models import Prediction, Study
from mlcore.selectors import urgent_class_keys


def urgent_probability(probabilities: dict[str, float]) -> float:
    return float(sum(p for k, p in probabilities.items() if k in urgent_class_keys()))


def study_triage_fields(study: Study) -> dict:
    images = list(study.images.prefetch_related("predictions", "reviews"))
    latest = [img.latest_prediction() for img in images]
    if not images or any(p is None or p.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING)
                         for p in latest):
        return {"status": Study.Status.PROCESSING}
    if any(p.status == Prediction.Status.FAILED for p in latest):
        return {"status": Study.Status.FAILED}
    out_of_scope = any(p.out_of_scope for p in latest)
    # Out-of-scope input goes first: a human must look at what the model cannot judge.
    priority = 1.0 if out_of_scope else max(urgent_probability(p.probabilities) for p in latest)
    top = max(latest, key=lambda p: urgent_probability(p.probabilities)).top_class
    reviewed = all(img.latest_review() is not None for img in images)
    return {
        "status": Study.Status.REVIEWED if reviewed else Study.Status.AWAITING_REVIEW,
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
