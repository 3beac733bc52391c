"""Readings, sign-off and amendments through the study page's URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from clinical.models import Review, Study
from clinical.tasks import export_feedback, run_prediction
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import study_row, upload_png

pytestmark = pytest.mark.django_db


def _review(client, study: Study, image, **data):
    return client.post(reverse("clinical:review", args=[study.uid, image.pk]), data, HTTP_HX_REQUEST="true")


def _sign_off(client, study: Study):
    return client.post(reverse("clinical:sign_off", args=[study.uid]), HTTP_HX_REQUEST="true")


def test_agree_records_the_ai_class_audits_and_queues_feedback(
    production_model, radiologist_client, radiologist, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    image = upload_png(radiologist_client, seed=20)
    run_prediction(prediction_id=image.predictions.get().pk)
    top = image.predictions.get().top_class
    with django_capture_on_commit_callbacks() as callbacks:
        response = _review(radiologist_client, image.study, image, verdict="agree", note="fine")
    assert response.status_code == 200
    review = Review.objects.get()
    assert (review.verdict, review.label, review.reader) == ("agree", top, radiologist)
    assert AuditEvent.objects.filter(action="review.created", object_id=str(review.pk)).exists()
    assert len(callbacks) == 1  # export_feedback, on commit
    body = response.content.decode()
    assert 'id="review-panel"' in body and "<html" not in body and "Agree with AI" in body
    assert 'id="study-status" class="status status-reviewed" hx-swap-oob="true"' in body
    export_feedback(review_id=review.pk)  # what the worker runs: the label lands in the store
    assert list(Path(tmp_path / "store" / "feedback" / top).iterdir())


def test_correction_to_a_class_shows_its_display_name(radiologist_client):
    study = study_row(top_class="lung-normal")
    image = study.images.get()
    response = _review(radiologist_client, study, image, verdict="corrected", label="lung-oct-dme", note="OCT")
    assert response.status_code == 200
    assert Review.objects.get().label == "lung-oct-dme"
    assert "Diabetic macular oedema" in response.content.decode()
    assert Study.objects.get(pk=study.pk).status == Study.Status.REVIEWED


def test_unknown_class_key_is_a_400_with_the_reason(radiologist_client):
    study = study_row()
    response = _review(radiologist_client, study, study.images.get(), verdict="corrected", label="lung-cat")
    assert response.status_code == 400
    body = response.content.decode()
    assert "unknown class key" in body and "lung-cat" in body and "lung-covid" in body
    assert not Review.objects.exists()


def test_missing_verdict_is_a_400(radiologist_client):
    study = study_row()
    response = _review(radiologist_client, study, study.images.get(), note="no verdict")
    assert response.status_code == 400 and "verdict" in response.content.decode()


def test_study_the_user_may_not_see_is_404_and_readers_only_may_review(client, integration_user, ml_admin):
    study = study_row()
    client.force_login(integration_user)
    assert _review(client, study, study.images.get(), verdict="uncertain").status_code == 404
    client.force_login(ml_admin)  # may read the worklist, may not review or sign off
    assert _review(client, study, study.images.get(), verdict="uncertain").status_code == 403
    assert _sign_off(client, study).status_code == 403
    assert not Review.objects.exists()


def test_image_of_another_study_is_404(radiologist_client):
    a, b = study_row(), study_row()
    assert _review(radiologist_client, a, b.images.get(), verdict="uncertain").status_code == 404


def test_sign_off_refused_until_every_image_is_read(radiologist_client):
    study = study_row(images=2)
    first, second = study.images.all()
    assert _review(radiologist_client, study, first, verdict="uncertain").status_code == 200
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert 'id="sign-off"' not in page and second.display_name == "image 2" and "image 2" in page.split("not yet read:")[1]
    response = _sign_off(radiologist_client, study)
    assert response.status_code == 400 and "not yet reviewed" in response.content.decode()
    assert Study.objects.get(pk=study.pk).status != Study.Status.SIGNED_OFF


def test_signed_off_study_is_read_only_and_amendments_are_audited(radiologist_client, radiologist):
    study = study_row()
    image = study.images.get()
    _review(radiologist_client, study, image, verdict="agree")
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert 'id="sign-off"' in page
    response = _sign_off(radiologist_client, study)
    assert response.status_code == 200 and "read-only" in response.content.decode()
    study.refresh_from_db()
    assert study.status == Study.Status.SIGNED_OFF and study.signed_off_by == radiologist
    assert AuditEvent.objects.filter(action="study.signed_off", object_id=str(study.pk)).exists()

    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert "Save amendment" in page and "Save reading" not in page and 'id="sign-off"' not in page
    refused = _review(radiologist_client, study, image, verdict="uncertain")
    assert refused.status_code == 403 and "signed off" in refused.content.decode()
    no_note = _review(radiologist_client, study, image, verdict="corrected", label="lung-covid", amendment="1")
    assert no_note.status_code == 400 and "needs a note" in no_note.content.decode()
    amended = _review(radiologist_client, study, image, verdict="corrected", label="lung-covid",
                      amendment="1", note="missed the consolidation")
    assert amended.status_code == 200
    review = Review.objects.latest("created_at")
    assert review.amendment and review.label == "lung-covid"
    assert AuditEvent.objects.filter(action="review.amended", object_id=str(review.pk)).exists()
    assert Study.objects.get(pk=study.pk).status == Study.Status.SIGNED_OFF


def test_plain_form_posts_redirect_back_to_the_study(radiologist_client):
    study = study_row()
    image = study.images.get()
    response = radiologist_client.post(reverse("clinical:review", args=[study.uid, image.pk]), {"verdict": "agree"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('clinical:study', args=[study.uid])}?image={image.pk}"
