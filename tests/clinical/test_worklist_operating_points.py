"""The worklist's urgency under a version's applied operating points (and without any)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from clinical.models import Study
from clinical.services.predictions import _study_refresh, triage_refresh_for_version
from mlcore.models import OperatingPoint
from tests.clinical.factories import ImageFactory, PredictionFactory, StudyFactory

pytestmark = pytest.mark.django_db


def study_with(probabilities: dict[str, float], *, version: str = "7", minutes_ago: int = 0) -> Study:
    study = StudyFactory(status=Study.Status.PROCESSING)
    top = max(probabilities, key=probabilities.get)
    PredictionFactory(image=ImageFactory(study=study), model_version=version, top_class=top,
                      confidence=probabilities[top], probabilities=probabilities)
    if minutes_ago:
        Study.objects.filter(pk=study.pk).update(received_at=timezone.now() - timezone.timedelta(minutes=minutes_ago))
    _study_refresh(study)
    study.refresh_from_db()
    return study


def apply(version: str, **thresholds: float) -> None:
    for key, t in thresholds.items():
        OperatingPoint.objects.create(name="radviewer-triage", version=version, class_key=key.replace("_", "-"),
                                      threshold=t, target_sensitivity=0.9, sensitivity=0.92, applied_at=timezone.now())


def band(client, study: Study) -> str:
    body = client.get(reverse("clinical:worklist")).content.decode()
    row = body[body.index(f'data-uid="{study.uid}"'):]
    return row[row.index('class="badge band ') + len('class="badge band '):].split('"')[0]


def test_without_points_the_urgent_mass_decides(radiologist_client):
    covid = study_with({"lung-covid": 0.3, "lung-opacity": 0.25, "lung-normal": 0.45})
    normal = study_with({"lung-covid": 0.3, "lung-normal": 0.7})
    assert covid.triage_priority == pytest.approx(0.55) and normal.triage_priority == pytest.approx(0.3)
    assert band(radiologist_client, covid) == "urgent" and band(radiologist_client, normal) == "routine"


def test_applied_points_of_the_predicting_version_decide_flag_and_order(radiologist_client):
    apply("7", lung_covid=0.25)  # v7 flags COVID-19 from 0.25 on
    low_covid = study_with({"lung-covid": 0.3, "lung-normal": 0.7}, minutes_ago=5)
    opacity = study_with({"lung-opacity": 0.45, "lung-normal": 0.55}, minutes_ago=4)  # 0.5 on its own
    other_version = study_with({"lung-covid": 0.3, "lung-normal": 0.7}, version="8", minutes_ago=3)
    assert low_covid.triage_priority >= 0.5 and band(radiologist_client, low_covid) == "urgent"
    assert opacity.triage_priority == pytest.approx(0.45) and band(radiologist_client, opacity) == "routine"
    # v8 has no applied points: the default rule (0.3 urgent mass) leaves it routine.
    assert other_version.triage_priority == pytest.approx(0.3) and band(radiologist_client, other_version) == "routine"
    body = radiologist_client.get(reverse("clinical:worklist")).content.decode()
    order = [body.index(f'data-uid="{s.uid}"') for s in (low_covid, opacity, other_version)]
    assert order == sorted(order)


def test_applying_points_re_ranks_open_studies():
    study = study_with({"lung-covid": 0.3, "lung-normal": 0.7}, version="9")
    signed = study_with({"lung-covid": 0.3, "lung-normal": 0.7}, version="9")
    Study.objects.filter(pk=signed.pk).update(status=Study.Status.SIGNED_OFF)
    assert study.triage_priority < 0.5
    apply("9", lung_covid=0.2)
    assert triage_refresh_for_version(model_name="radviewer-triage", model_version="9") == 1
    study.refresh_from_db()
    assert study.triage_priority >= 0.5
    assert Study.objects.get(pk=signed.pk).triage_priority < 0.5  # signed off: left as it was
