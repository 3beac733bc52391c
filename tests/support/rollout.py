"""Shadow fixtures for the invisibility tests: two real registered versions (v1 in
production, v2 the candidate in shadow on every study), and a mark that makes a leaked
shadow result unmistakable."""

from __future__ import annotations

import pytest

from clinical.models import Prediction
from clinical.tasks import run_prediction
from mlcore.ml import tracking
from mlcore.services.registry import registry_sync
from mlcore.services.rollout import rollout_policy_update
from tests.support.registry import NAME

MARK_P = 0.987  # "98.7 %": no random-weight prediction over four chest classes comes near it
MARK_TEXT = "98.7"


@pytest.fixture(name="shadow")
def shadow_fixture(registry, ml_admin):
    tracking.set_alias(NAME, "candidate", "2")
    registry_sync(name=NAME)
    rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, reason="shadow v2")
    return registry


def mark(shadow_p: Prediction, production: Prediction) -> str:
    """Give the (real, finished) shadow prediction a result no production one has: an
    urgent chest class other than production's, at 98.7 %."""
    cxr = ["lung-covid", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia"]
    urgent = next(k for k in cxr if k != production.top_class)
    rest = (1 - MARK_P) / 4
    shadow_p.probabilities = {k: (MARK_P if k == urgent else rest) for k in [*cxr, "lung-normal"]}
    shadow_p.top_class, shadow_p.confidence = urgent, MARK_P
    shadow_p.save()
    return urgent


def triage_with_shadow(study_uid: str) -> tuple[Prediction, Prediction]:
    """Run the production prediction (which queues the shadow), then the shadow, for real."""
    production = Prediction.objects.get(image__study__uid=study_uid, arm="production")
    run_prediction(prediction_id=production.pk)
    shadow_p = Prediction.objects.get(image__study__uid=study_uid, arm="shadow")
    run_prediction(prediction_id=shadow_p.pk)
    production.refresh_from_db()
    shadow_p.refresh_from_db()
    assert production.status == shadow_p.status == "succeeded"
    assert (production.model_version, shadow_p.model_version) == ("1", "2")
    return production, shadow_p
