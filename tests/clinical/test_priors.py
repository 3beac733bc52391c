"""Priors (issue 14 item 14): the selector, the study page's list (blinded reads leak no AI),
the side-by-side compare page, the OCT window presets and the next study's prefetch link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clinical.models import Review, Study
from clinical.selectors.priors import study_prior, study_priors
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import ImageFactory, StudyFactory
from tests.clinical.study_rows import blinded_study, study_row, upload_png

pytestmark = pytest.mark.django_db


def _priors_card(body: str) -> str:
    start = body.index('id="priors"')
    return body[start : body.index("</section>", start)]


def _patient(key: str, *ages_days: float, top_class: str = "lung-normal") -> list[Study]:
    """Studies of one patient ``key``, received ``ages_days`` ago."""
    out = []
    for age in ages_days:
        study = study_row(top_class=top_class)
        Study.objects.filter(pk=study.pk).update(patient_key=key, received_at=timezone.now() - timedelta(days=age))
        study.refresh_from_db()
        out.append(study)
    return out


def test_priors_are_the_same_patients_other_studies_newest_first():
    current, older, oldest, newer = _patient("pt-a", 1, 30, 400, 0.5)
    _patient("pt-b", 2)  # another patient
    study_row()  # no patient key
    Review.objects.create(image=older.images.get(), verdict="corrected", label="lung-opacity")
    priors = study_priors(study=current)
    assert [p.study for p in priors] == [newer, older, oldest]  # not itself, not pt-b
    assert priors[1].reading.label == "lung-opacity" and priors[0].reading is None
    assert priors[0].image_count == 1 and priors[0].first_image_id == newer.images.get().pk
    assert priors[0].ai_top_class == "lung-normal"


def test_a_study_without_patient_key_has_no_priors():
    lone = study_row()
    study_row()  # also no key: "" must not match ""
    assert study_priors(study=lone) == []
    assert study_prior(study=lone, prior_uid=study_row().uid) is None


def test_study_prior_only_matches_the_same_patient():
    current, prior = _patient("pt-a", 1, 20)
    (other,) = _patient("pt-b", 3)
    assert study_prior(study=current, prior_uid=prior.uid) == prior
    assert study_prior(study=current, prior_uid=other.uid) is None
    assert study_prior(study=current, prior_uid=current.uid) is None


def test_study_page_lists_priors_with_links(radiologist_client):
    current, prior = _patient("pt-a", 0, 40, top_class="lung-tuberculosis")
    (other,) = _patient("pt-b", 3)
    body = radiologist_client.get(reverse("clinical:study", args=[current.uid])).content.decode()
    assert 'id="priors"' in body
    assert reverse("clinical:study_compare", args=[current.uid, prior.uid]) in body
    assert prior.received_at.strftime("%Y-%m-%d") in body and "AI: Tuberculosis" in body
    assert other.uid not in body and "pt-a" not in body  # another patient; the key is never shown


def test_blinded_current_read_hides_the_priors_ai(radiologist_client):
    current = blinded_study()
    (prior,) = _patient("pt-a", 30, top_class="lung-tuberculosis")
    Study.objects.filter(pk=prior.pk).update(scope_source="model")
    Study.objects.filter(pk=current.pk).update(patient_key="pt-a")
    card = _priors_card(radiologist_client.get(reverse("clinical:study", args=[current.uid])).content.decode())
    assert reverse("clinical:study_compare", args=[current.uid, prior.uid]) in card
    assert "Tuberculosis" not in card and "AI:" not in card
    assert "Chest X-ray" not in card  # a model-inferred scope is AI output too
    # Once the verdict is saved the AI is revealed, and so are the priors' AI results.
    Study.objects.filter(pk=current.pk).update(ai_revealed_at=timezone.now())
    card = _priors_card(radiologist_client.get(reverse("clinical:study", args=[current.uid])).content.decode())
    assert "AI: Tuberculosis" in card and "Chest X-ray" in card


def test_compare_page_shows_both_studies_and_audits_both(radiologist_client, radiologist):
    current, prior = _patient("pt-a", 0, 40)
    url = reverse("clinical:study_compare", args=[current.uid, prior.uid])
    response = radiologist_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    for study in (current, prior):
        assert reverse("clinical:image_display", args=[study.uid, study.images.get().pk]) in body
        assert AuditEvent.objects.filter(action="study.viewed", object_id=str(study.pk), actor=radiologist).exists()
    assert body.count('class="compare-canvas"') == 2
    assert "js/compare.js" in body and "<script>" not in body and 'style="' not in body
    assert "Top class" not in body and "heatmap" not in body  # images only


def test_compare_page_refuses_other_patients_missing_studies_and_non_readers(
    radiologist_client, client, integration_user
):
    current, prior = _patient("pt-a", 0, 40)
    (other,) = _patient("pt-b", 3)
    lone = study_row()
    for a, b in (
        (current.uid, other.uid),
        (current.uid, "2.25.1"),
        ("2.25.1", prior.uid),
        (lone.uid, current.uid),
        (current.uid, current.uid),
    ):
        assert radiologist_client.get(reverse("clinical:study_compare", args=[a, b])).status_code == 404, (a, b)
    assert not AuditEvent.objects.filter(action="study.viewed", object_id=str(other.pk)).exists()
    assert (
        radiologist_client.get(
            reverse("clinical:study_compare", args=[current.uid, prior.uid]), {"prior_image": 999999}
        ).status_code
        == 404
    )
    client.force_login(integration_user)
    assert client.get(reverse("clinical:study_compare", args=[current.uid, prior.uid])).status_code == 404


def test_compare_page_of_a_blinded_read_shows_no_ai(radiologist_client):
    current = blinded_study()
    (prior,) = _patient("pt-a", 30, top_class="lung-tuberculosis")
    Study.objects.filter(pk=current.pk).update(patient_key="pt-a")
    body = radiologist_client.get(reverse("clinical:study_compare", args=[current.uid, prior.uid])).content.decode()
    assert "Blinded read" in body and "Tuberculosis" not in body and "COVID" not in body
    assert "<select" not in body  # no class list either: images only


def _preset_buttons(body: str) -> list[str]:
    import re

    return re.findall(r'data-preset="([a-z]+)"', body)


def test_oct_studies_get_oct_presets_and_chest_studies_chest_ones(radiologist_client):
    cxr = study_row()
    oct_study = StudyFactory(scope=Study.Scope.OCT, scope_source="header", modality="OPT")
    ImageFactory(study=oct_study)
    body = radiologist_client.get(reverse("clinical:study", args=[oct_study.uid])).content.decode()
    assert _preset_buttons(body) == ["default", "high", "low"]
    assert 'data-presets="oct"' in body and "High contrast" in body and "Lung</button>" not in body
    body = radiologist_client.get(reverse("clinical:study", args=[cxr.uid])).content.decode()
    assert _preset_buttons(body) == ["default", "lung", "soft", "bone"] and 'data-presets="cxr"' in body


def test_gesture_hint_is_outside_the_image(radiologist_client):
    body = radiologist_client.get(reverse("clinical:study", args=[study_row().uid])).content.decode()
    viewer = body[body.index('<div id="viewer"') :]
    viewer = viewer[: viewer.index("</div>")]
    assert "viewer-hint" not in viewer and 'class="viewer-hint' in body


def test_study_page_prefetches_the_next_studys_display_image(radiologist_client):
    first = study_row(priority=0.9)
    second = study_row(priority=0.5)
    body = radiologist_client.get(reverse("clinical:study", args=[first.uid])).content.decode()
    url = reverse("clinical:image_display", args=[second.uid, second.images.get().pk])
    assert f'<link rel="prefetch" href="{url}" as="image"' in body
    last = radiologist_client.get(reverse("clinical:study", args=[second.uid])).content.decode()
    assert 'rel="prefetch"' not in last  # the end of the worklist (nothing after it)


def test_display_image_may_be_reused_from_the_browser_cache(radiologist_client):
    image = upload_png(radiologist_client, seed=3)
    response = radiologist_client.get(reverse("clinical:image_display", args=[image.study.uid, image.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=3600"


def test_a_prefetch_of_the_display_image_is_audited_as_such(radiologist_client, radiologist):
    image = upload_png(radiologist_client, seed=4)
    url = reverse("clinical:image_display", args=[image.study.uid, image.pk])
    assert radiologist_client.get(url, HTTP_SEC_PURPOSE="prefetch").status_code == 200
    event = AuditEvent.objects.get(action="image.viewed", object_id=str(image.pk))
    assert event.details["prefetch"] is True and event.actor == radiologist


def test_compare_page_picks_an_image_of_a_multi_image_prior(radiologist_client):
    current, prior = _patient("pt-a", 0, 40)
    second = ImageFactory(study=prior)
    url = reverse("clinical:study_compare", args=[current.uid, prior.uid])
    body = radiologist_client.get(url, {"prior_image": second.pk}).content.decode()
    assert reverse("clinical:image_display", args=[prior.uid, second.pk]) in body
    assert f"?prior_image={prior.images.order_by('id').first().pk}" in body  # the other image's link
    assert "image 2" in body and second.original_name not in body  # ordinals, never file names
