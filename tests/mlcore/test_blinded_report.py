"""The automation-bias page: the share form and the report on real review outcomes."""

import pytest
from django.test import Client
from django.urls import reverse

from clinical.services.reviews import review_create
from mlcore.ml.evaluation.blinding import newcombe_difference, wilson
from mlcore.models import RolloutPolicy
from mlcore.selectors import automation_bias_report
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import blinded_study, study_row

pytestmark = pytest.mark.django_db
URL = "/ml/blinded/"


def test_report_figures_from_reviews_in_the_database(radiologist, ml_admin_client):
    # Blinded: 3 reads of v7's COVID-19 call, the reader names COVID-19 in 1 of them.
    for label in ("lung-covid", "lung-normal", "lung-opacity"):
        study = blinded_study()
        review_create(image=study.images.get(), verdict="corrected", label=label, reader=radiologist)
    # ... and one who then changes their mind after the reveal: still scored on the blinded verdict.
    study = blinded_study()
    image = study.images.get()
    review_create(image=image, verdict="corrected", label="lung-normal", reader=radiologist)
    review_create(image=image, verdict="agree", reader=radiologist)
    # AI shown: 4 reads of a COVID-19 call, 4 agree; one uncertain (not counted).
    for _ in range(4):
        review_create(image=study_row(top_class="lung-covid").images.get(), verdict="agree", reader=radiologist)
    review_create(image=study_row(top_class="lung-covid").images.get(), verdict="uncertain", reader=radiologist)

    [v7] = automation_bias_report(name="radviewer-triage")
    covid = v7["per_class"]["lung-covid"]
    assert (covid["blinded"]["n"], covid["blinded"]["agreed"]) == (4, 1)
    assert (covid["shown"]["n"], covid["shown"]["agreed"]) == (4, 4)
    assert covid["blinded"]["agreement"] == pytest.approx(wilson(1, 4))
    assert covid["inflation"] == pytest.approx(newcombe_difference(4, 4, 1, 4))

    body = ml_admin_client.get(URL).content.decode()
    assert "Automation bias" in body and "v7" in body and "confirmation inflation" in body
    assert "+0.750" in body  # 4/4 - 1/4
    assert "changed by the reader after the reveal: 1" in body
    assert 'href="/ml/blinded/"' in ml_admin_client.get(reverse("mlcore:dashboard")).content.decode()


def test_share_form_saves_and_refuses_bad_input(ml_admin_client, radiologist):
    assert 'value="0"' in ml_admin_client.get(URL).content.decode()  # the test profile's default
    response = ml_admin_client.post(URL, {"blinded_percent": "5.5"})
    assert response.status_code == 302 and RolloutPolicy.objects.get().blinded_percent == 5.5
    for bad, message in (("150", "between 0 and 100"), ("three", "must be a number"), ("", "enter the share")):
        response = ml_admin_client.post(URL, {"blinded_percent": bad})
        assert response.status_code == 422 and message in response.content.decode()
    assert RolloutPolicy.objects.get().blinded_percent == 5.5
    assert AuditEvent.objects.filter(action="rollout.blinded_share_changed").count() == 1
    reader = Client()
    reader.force_login(radiologist)
    assert reader.get(URL).status_code == 403 and reader.post(URL, {"blinded_percent": "50"}).status_code == 403
