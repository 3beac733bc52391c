"""The study page, its polled status partial, image bytes and attributions, through URLs."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage

from clinical.models import Image, Prediction, Study
from clinical.tasks import run_attribution, run_prediction
from mlcore.ml.classes import CLASS_BY_KEY
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import upload_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def predicted(production_model, radiologist_client) -> Image:
    image = upload_png(radiologist_client)
    run_prediction(prediction_id=image.predictions.get().pk)
    assert image.predictions.get().status == Prediction.Status.SUCCEEDED
    image.refresh_from_db()
    return image


def _page(client, image: Image, params=None):
    return client.get(reverse("clinical:study", args=[image.study.uid]), params or {})


def test_page_shows_sorted_probabilities_model_and_is_audited(predicted, radiologist_client, radiologist):
    response = _page(radiologist_client, predicted)
    assert response.status_code == 200
    body = response.content.decode()
    prediction = predicted.predictions.get()
    names = [CLASS_BY_KEY[k].display_name for k, _ in prediction.sorted_probabilities()]
    positions = [body.index(f'<span class="name">{n}</span>') for n in names]
    # a PNG's scope comes from the model: the chest classes only, in one sorted group
    assert positions == sorted(positions) and len(names) == 5 and prediction.scope == "cxr"
    assert "Chest X-ray classes" in body and "Retinal OCT classes" not in body
    top_p = prediction.sorted_probabilities()[0][1]
    assert f"{100 * top_p:.1f} %" in body
    assert f'<strong class="model-version">{prediction.model_version}</strong>' in body
    assert prediction.model_name in body and "arm production" in body
    assert reverse("clinical:image_heatmap", args=[predicted.study.uid, predicted.pk]) in body
    assert "/media/" not in body
    assert 'hx-trigger="every 1s"' not in body  # finished: nothing polls
    events = AuditEvent.objects.filter(action="study.viewed", object_id=str(predicted.study.pk))
    assert events.count() == 1 and events.get().actor == radiologist
    _page(radiologist_client, predicted)
    assert events.count() == 2


def test_unknown_uid_and_users_without_worklist_get_404(predicted, client, integration_user, radiologist_client):
    assert radiologist_client.get(reverse("clinical:study", args=["2.25.1"])).status_code == 404
    client.force_login(integration_user)
    uid, pk = predicted.study.uid, predicted.pk
    for url in (
        reverse("clinical:study", args=[uid]),
        reverse("clinical:study_status", args=[uid]),
        reverse("clinical:image_display", args=[uid, pk]),
        reverse("clinical:image_heatmap", args=[uid, pk]),
    ):
        assert client.get(url).status_code == 404, url


def test_image_bytes_are_served_through_access_checks(predicted, radiologist_client):
    uid = predicted.study.uid
    response = radiologist_client.get(reverse("clinical:image_display", args=[uid, predicted.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    with default_storage.open(predicted.display_file.name, "rb") as fh:
        assert b"".join(response.streaming_content) == fh.read()
    heat = radiologist_client.get(reverse("clinical:image_heatmap", args=[uid, predicted.pk]))
    overlay = PILImage.open(io.BytesIO(b"".join(heat.streaming_content)))
    assert overlay.mode == "RGBA" and overlay.size == (predicted.width, predicted.height)
    # The display image and its heat map are one view of the image (one event per opening).
    viewed = AuditEvent.objects.filter(action="image.viewed", object_id=str(predicted.pk))
    assert viewed.count() == 1 and viewed.get().details["kind"] == "display"
    other = Study.objects.create()
    assert radiologist_client.get(reverse("clinical:image_display", args=[other.uid, predicted.pk])).status_code == 404
    assert radiologist_client.get(
        reverse("clinical:image_attribution", args=[uid, predicted.pk, "grad_cam"])).status_code == 404


def test_status_partial_polls_until_the_prediction_finishes(production_model, radiologist_client):
    image = upload_png(radiologist_client, seed=3)
    page = _page(radiologist_client, image).content.decode()
    assert "AI triage running" in page and 'hx-trigger="every 1s"' in page
    viewed = AuditEvent.objects.filter(action="study.viewed").count()
    status_url = reverse("clinical:study_status", args=[image.study.uid])
    polled = radiologist_client.get(status_url, {"image": image.pk}, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in polled.content.decode() and b"<html" not in polled.content
    run_prediction(prediction_id=image.predictions.get().pk)
    done = radiologist_client.get(status_url, {"image": image.pk}, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done.split(">", 1)[0]
    assert "data-overlay-url" in done and "Awaiting review" in done  # oob study status badge
    assert AuditEvent.objects.filter(action="study.viewed").count() == viewed  # polls are not audited


def test_failure_shows_reason_and_retry_requeues(production_model, radiologist_client,
                                                 django_capture_on_commit_callbacks):
    image = upload_png(radiologist_client, seed=4)
    prediction = image.predictions.get()
    Prediction.objects.filter(pk=prediction.pk).update(status="failed", failure_reason="OSError: disk on fire")
    Study.objects.filter(pk=image.study_id).update(status=Study.Status.FAILED)
    body = _page(radiologist_client, image).content.decode()
    assert "AI triage failed" in body and "disk on fire" in body and ">Retry<" in body
    with django_capture_on_commit_callbacks() as callbacks:
        response = radiologist_client.post(reverse("clinical:prediction_retry", args=[image.study.uid, image.pk]),
                                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
    assert len(callbacks) == 1
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.QUEUED
    assert AuditEvent.objects.filter(action="prediction.retried").exists()


def test_attribution_is_requested_polled_and_served(predicted, radiologist_client,
                                                    django_capture_on_commit_callbacks):
    url = reverse("clinical:attribution", args=[predicted.study.uid, predicted.pk, "grad_cam"])
    with django_capture_on_commit_callbacks() as callbacks:
        queued = radiologist_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert len(callbacks) == 1 and 'hx-trigger="every 1s"' in queued and "Computing Grad-CAM" in queued
    prediction = predicted.predictions.get()
    run_attribution(prediction_id=prediction.pk, method="grad_cam")
    ready = radiologist_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in ready and 'data-overlay-source="grad_cam"' in ready
    png = radiologist_client.get(reverse("clinical:image_attribution", args=[predicted.study.uid, predicted.pk,
                                                                              "grad_cam"]))
    assert png.status_code == 200
    assert PILImage.open(io.BytesIO(b"".join(png.streaming_content))).size == (predicted.width, predicted.height)
    assert radiologist_client.post(url.replace("grad_cam", "lime")).status_code == 404


def test_banners_for_scope_warning_and_out_of_scope(predicted, radiologist_client):
    Study.objects.filter(pk=predicted.study_id).update(scope_warning="Modality MR is outside the model's scope")
    Prediction.objects.filter(image=predicted).update(
        out_of_scope=True, ood_score=7.5, ood_percentile=99.6, ood_threshold_percentile=99.0,
        ood_reason="unlike training images")
    body = _page(radiologist_client, predicted).content.decode()
    assert "Scope warning" in body and "Modality MR is outside" in body
    assert "Out of scope — read it without the AI." in body and "Reason: unlike training images." in body
    # the score as a statement a reader can weigh, not a raw number
    assert ("The image is more unusual than 99.6 % of the validation images the model was checked on "
            "(the model flags images above 99 %).") in body
    assert "7.50" not in body


def test_multiple_images_show_thumbnails_and_one_active(production_model, radiologist_client):
    first = upload_png(radiologist_client, seed=5)
    second = upload_png(radiologist_client, seed=6)
    Image.objects.filter(pk=second.pk).update(study=first.study)
    body = _page(radiologist_client, first, {"image": second.pk}).content.decode()
    assert body.count('<a class="thumb') == 2 and 'class="thumb active"' in body
    assert reverse("clinical:image_display", args=[first.study.uid, second.pk]) in body.split('id="viewer"')[1]


def test_next_goes_to_the_following_study_in_worklist_order(production_model, radiologist_client):
    a = upload_png(radiologist_client, seed=7).study
    b = upload_png(radiologist_client, seed=8).study
    Study.objects.filter(pk=a.pk).update(triage_priority=0.9, status="awaiting_review")
    Study.objects.filter(pk=b.pk).update(triage_priority=0.1, status="awaiting_review")
    response = radiologist_client.get(reverse("clinical:study_next", args=[a.uid]))
    assert response.status_code == 302 and response["Location"] == reverse("clinical:study", args=[b.uid])
    last = radiologist_client.get(reverse("clinical:study_next", args=[b.uid]))
    assert last["Location"] == reverse("clinical:worklist")


def test_a_stuck_running_prediction_offers_retry_and_retry_requeues_it(
        production_model, radiologist_client, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    image = upload_png(radiologist_client, seed=5)
    prediction = image.predictions.get()
    Prediction.objects.filter(pk=prediction.pk).update(status="running", attempts=1, task_id="gone",
                                                       started_at=timezone.now() - timedelta(hours=1))
    body = _page(radiologist_client, image).content.decode()
    assert "longer than expected" in body and ">Retry<" in body
    with django_capture_on_commit_callbacks() as callbacks:
        response = radiologist_client.post(reverse("clinical:prediction_retry", args=[image.study.uid, image.pk]),
                                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "longer than expected" not in response.content.decode()
    assert len(callbacks) == 1
    prediction.refresh_from_db()
    assert (prediction.status, prediction.attempts, prediction.task_id) == ("queued", 0, "")
    # A prediction that is running within its limits is left alone.
    Prediction.objects.filter(pk=prediction.pk).update(status="running", started_at=timezone.now())
    assert ">Retry<" not in _page(radiologist_client, image).content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        radiologist_client.post(reverse("clinical:prediction_retry", args=[image.study.uid, image.pk]),
                                HTTP_HX_REQUEST="true")
    assert callbacks == [] and Prediction.objects.get(pk=prediction.pk).status == "running"
