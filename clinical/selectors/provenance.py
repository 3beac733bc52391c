"""What served a study: each prediction's model version, arm and time, and which version
held ``production`` at that moment (from mlcore's alias timeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clinical.models import Prediction, Study
from mlcore.selectors.promotion import served_at


@dataclass(frozen=True)
class PredictionProvenance:
    image_id: int
    image_name: str
    model_name: str
    model_version: str
    arm: str
    status: str
    at: datetime
    production_then: str | None


def study_provenance(*, study: Study, include_shadow: bool) -> list[PredictionProvenance]:
    """Oldest first. Shadow predictions are invisible to readers (DESIGN.md section 7), so
    only callers that may see them (ML admins) pass ``include_shadow``."""
    qs = Prediction.objects.filter(image__study=study).select_related("image").order_by("created_at", "id")
    if not include_shadow:
        qs = qs.exclude(arm=Prediction.Arm.SHADOW)
    return [
        PredictionProvenance(
            image_id=p.image_id, image_name=p.image.display_name, model_name=p.model_name,
            model_version=p.model_version, arm=p.arm, status=p.status, at=p.created_at,
            production_then=served_at(name=p.model_name, alias="production", at=p.created_at)
            if p.model_name else None,
        )
        for p in qs
    ]
