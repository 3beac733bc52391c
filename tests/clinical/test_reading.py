"""Issue 14, reading form: undo for 10 s, no one-key agreement without a finished in-scope AI
result, numbered classes, structured impression (FHIR conclusion and SR: tests/clinical/api/
test_reading_impression.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from clinical.models import Prediction, Review, Study
from clinical.tasks import export_feedback
from mlcore.models import ReviewOutcome
from radviewer.accounts.roles import RADIOLOGIST
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import blinded_study, study_row
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def _review(client, study: Study, image, **data):
    return client.post(reverse("clinical:review", args=[study.uid, image.pk]), data, HTTP_HX_REQUEST="true")


def _undo(client, study: Study, image, review: Review):
    return client.post(reverse("clinical:review_undo", args=[study.uid, image.pk, review.pk]), HTTP_HX_REQUEST="true")


def _age(review: Review, seconds: float) -> None:
    Review.objects.filter(pk=review.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_save_offers_undo_and_undo_withdraws_the_reading_and_its_outcome(radiologist_client, radiologist):
    study = study_row(top_class="lung-tuberculosis")
    image = study.images.get()
    response = _review(radiologist_client, study, image, verdict="agree")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Saved: <strong>Agree with AI (Tuberculosis)</strong>" in body
    assert 'id="undo-reading"' in body and 'data-undo-seconds="10"' in body
    review = Review.objects.get()
    assert ReviewOutcome.objects.filter(prediction_ref=f"clinical.prediction:{review.prediction_id}").exists()
    assert Study.objects.get(pk=study.pk).status == Study.Status.REVIEWED

    response = _undo(radiologist_client, study, image, review)
    assert response.status_code == 200, response.content
    body = response.content.decode()
    assert "Reading undone" in body and 'id="undo-reading"' not in body and "No reading yet." in body
    assert not Review.objects.exists() and not ReviewOutcome.objects.exists()
    assert Study.objects.get(pk=study.pk).status == Study.Status.AWAITING_REVIEW
    event = AuditEvent.objects.get(action="review.undone")
    assert event.details["verdict"] == "agree" and event.details["label"] == "lung-tuberculosis"
    assert event.actor == radiologist


def test_undo_gives_the_outcome_back_to_the_previous_reading(radiologist_client):
    study = study_row(top_class="lung-tuberculosis")
    image = study.images.get()
    _review(radiologist_client, study, image, verdict="corrected", label="lung-covid")
    _age(Review.objects.get(), 60)
    _review(radiologist_client, study, image, verdict="agree")
    latest = Review.objects.order_by("-created_at").first()
    assert ReviewOutcome.objects.get().confirmed_class == "lung-tuberculosis"
    assert _undo(radiologist_client, study, image, latest).status_code == 200
    assert list(Review.objects.values_list("label", flat=True)) == ["lung-covid"]
    outcome = ReviewOutcome.objects.get()
    assert (outcome.verdict, outcome.confirmed_class) == ("corrected", "lung-covid")
    assert Study.objects.get(pk=study.pk).status == Study.Status.REVIEWED


def test_undo_is_refused_after_the_window(radiologist_client, settings):
    settings.REVIEW_UNDO_SECONDS = 10
    study = study_row()
    image = study.images.get()
    _review(radiologist_client, study, image, verdict="agree")
    review = Review.objects.get()
    _age(review, 11)
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert 'id="undo-reading"' not in page  # the button is gone with the window
    response = _undo(radiologist_client, study, image, review)
    assert response.status_code == 403
    assert "undo window (10 s) has passed" in response.content.decode()
    assert Review.objects.filter(pk=review.pk).exists()
    assert not AuditEvent.objects.filter(action="review.undone").exists()


def test_undo_is_refused_after_sign_off(radiologist_client):
    study = study_row()
    image = study.images.get()
    _review(radiologist_client, study, image, verdict="agree")
    review = Review.objects.get()
    assert (
        radiologist_client.post(reverse("clinical:sign_off", args=[study.uid]), HTTP_HX_REQUEST="true").status_code
        == 200
    )
    response = _undo(radiologist_client, study, image, review)
    assert response.status_code == 403 and "signed off" in response.content.decode()
    assert Review.objects.filter(pk=review.pk).exists()


def test_only_the_reader_may_undo(radiologist_client, client):
    study = study_row()
    image = study.images.get()
    _review(radiologist_client, study, image, verdict="agree")
    review = Review.objects.get()
    other = _user("dr_wilson", RADIOLOGIST)
    client.force_login(other)
    response = _undo(client, study, image, review)
    assert response.status_code == 403 and "only the reader" in response.content.decode()
    assert Review.objects.filter(pk=review.pk).exists()


def test_feedback_export_waits_for_the_undo_window_and_skips_an_undone_reading(
    radiologist_client, settings, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    sent = []

    class FakeTask:
        def apply_async(self, kwargs=None, **options):
            sent.append((kwargs, options))

    monkeypatch.setattr("radviewer.lib.tasks.task_by_name", lambda task: FakeTask())
    study = study_row(top_class="lung-covid")
    image = study.images.get()
    with django_capture_on_commit_callbacks(execute=True):
        _review(radiologist_client, study, image, verdict="agree")
    review = Review.objects.get()
    assert sent == [({"review_id": review.pk}, {"countdown": 15})]  # 10 s window + 5 s margin
    assert _undo(radiologist_client, study, image, review).status_code == 200
    export_feedback(review_id=review.pk)  # the deferred message arrives after the undo: nothing lands
    assert not Path(tmp_path / "store" / "feedback").exists() or not any(
        Path(tmp_path / "store" / "feedback").rglob("*.png")
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"out_of_scope": True}, "Out of scope: read it without the AI"),
        ({"status": Prediction.Status.RUNNING, "top_class": ""}, "still running"),
        ({"status": Prediction.Status.QUEUED, "top_class": ""}, "still running"),
        ({"status": Prediction.Status.FAILED, "top_class": ""}, "triage failed"),
        ({"top_class": "", "scope": ""}, "Out of scope"),
    ],
)
def test_agree_is_refused_without_a_finished_in_scope_result(radiologist_client, change, reason):
    study = study_row()
    image = study.images.get()
    Prediction.objects.filter(image=image).update(**change)
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert f'data-agree-refusal="{reason}' in page or reason in page.split('data-agree-refusal="')[1].split('"')[0]
    response = _review(radiologist_client, study, image, verdict="agree")
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Review.objects.exists()


def test_agree_is_refused_on_a_blinded_read_and_the_panel_says_so(radiologist_client):
    study = blinded_study()
    image = study.images.get()
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert 'data-agree-refusal="Blinded read' in page and 'data-top-class=""' in page
    response = _review(radiologist_client, study, image, verdict="agree")
    assert response.status_code == 400 and not Review.objects.exists()


def test_a_finished_in_scope_result_may_be_agreed_and_offers_its_top_class_to_the_keys(radiologist_client):
    study = study_row(top_class="lung-opacity")
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert 'data-agree-refusal=""' in page and 'data-top-class="lung-opacity"' in page


def test_classes_are_numbered_scope_first(radiologist_client):
    oct_study = study_row(top_class="lung-oct-dme", modality="OPT")
    Study.objects.filter(pk=oct_study.pk).update(scope=Study.Scope.OCT)
    page = radiologist_client.get(reverse("clinical:study", args=[oct_study.uid])).content.decode()
    assert 'data-n="1">1 · Choroidal neovascularisation</option>' in page
    assert 'data-n="4">4 · No finding (OCT)</option>' in page
    assert 'data-n="5">5 · COVID-19 pneumonia (other scope)</option>' in page
    cxr_study = study_row(top_class="lung-normal")
    page = radiologist_client.get(reverse("clinical:study", args=[cxr_study.uid])).content.decode()
    assert 'data-n="3">3 · Lung opacity (non-COVID)</option>' in page
    assert 'data-n="9">9 · No finding (OCT) (other scope)</option>' in page
    assert "js/reading.js" in page


def test_impression_is_saved_shown_and_limited(radiologist_client):
    study = study_row()
    image = study.images.get()
    response = _review(
        radiologist_client,
        study,
        image,
        verdict="corrected",
        label="lung-tuberculosis",
        impression="  Right upper-lobe cavity.  ",
    )
    assert response.status_code == 200
    assert Review.objects.get().impression == "Right upper-lobe cavity."
    assert "Impression: Right upper-lobe cavity." in response.content.decode()
    response = _review(radiologist_client, study, image, verdict="uncertain", impression="x" * 501)
    assert response.status_code == 400 and Review.objects.count() == 1
