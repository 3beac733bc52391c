"""Blinded reads on the reader surfaces: chosen at ingest, AI hidden until the verdict, reveal."""

import pytest
from django.urls import reverse

from clinical.models import Review
from clinical.services.reviews import review_create
from mlcore.models import ReviewOutcome
from mlcore.services.blinding import BlindingError, blinded_bucket, blinded_read_chosen, blinded_share_set
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import blinded_study, study_row, upload_png

pytestmark = pytest.mark.django_db


def test_choice_is_deterministic_and_follows_the_share():
    uids = [f"2.25.{i}" for i in range(4000)]
    assert not any(blinded_read_chosen(study_uid=u) for u in uids[:200])  # the test profile's default is 0
    blinded_share_set(actor="test", value="3")
    share = sum(blinded_read_chosen(study_uid=u) for u in uids) / len(uids)
    assert 0.02 <= share <= 0.04
    assert [blinded_read_chosen(study_uid=u) for u in uids[:300]] == [blinded_read_chosen(study_uid=u) for u in uids[:300]]
    assert blinded_bucket("1.2.3") == blinded_bucket("1.2.3")
    blinded_share_set(actor="test", value="100 %")
    assert all(blinded_read_chosen(study_uid=u) for u in uids[:100])
    assert AuditEvent.objects.filter(action="rollout.blinded_share_changed").count() == 2


@pytest.mark.parametrize("bad", ["", "abc", "-1", "100.5", "nan", "inf"])
def test_bad_shares_are_refused_and_nothing_changes(bad):
    blinded_share_set(actor="test", value=5)
    with pytest.raises(BlindingError, match=r"0 to 100|between 0 and 100"):
        blinded_share_set(actor="test", value=bad)
    from mlcore.services.blinding import blinded_percent
    assert blinded_percent() == 5


def test_an_upload_is_chosen_at_ingest(radiologist_client):
    blinded_share_set(actor="test", value=100)
    assert upload_png(radiologist_client, seed=1).study.blinded_read
    blinded_share_set(actor="test", value=0)
    assert not upload_png(radiologist_client, seed=2).study.blinded_read


def test_viewer_hides_every_trace_of_the_ai_until_the_verdict(radiologist_client, radiologist):
    study = blinded_study()
    assert (study.top_class, study.out_of_scope, study.triage_priority) == ("", False, 0.5)
    image = study.images.get()
    url = reverse("clinical:study", args=[study.uid])
    body = radiologist_client.get(url).content.decode()
    assert "Blinded read: AI hidden until you save a verdict" in body
    for trace in ("<strong>COVID-19 pneumonia</strong>", 'data-class="lung-covid"', "91.0 %", "Top class", "data-overlay-source", "Agree with AI",
                  "model-version", "Compute attribution", "(inferred)"):
        assert trace not in body, trace
    partial = radiologist_client.get(reverse("clinical:study_status", args=[study.uid]), {"image": image.pk}).content
    assert b"lung-covid" not in partial and b"COVID" not in partial and b"AI hidden" in partial
    assert radiologist_client.get(reverse("clinical:image_heatmap", args=[study.uid, image.pk])).status_code == 404
    assert radiologist_client.get(reverse("clinical:image_attribution", args=[study.uid, image.pk,
                                                                              "integrated_gradients"])).status_code == 404
    assert radiologist_client.post(reverse("clinical:attribution", args=[study.uid, image.pk, "integrated_gradients"])
                                   ).status_code in (404, 409)

    # The verdict: agree is refused (nothing to agree with), a class is saved blinded.
    refused = radiologist_client.post(reverse("clinical:review", args=[study.uid, image.pk]),
                                      {"verdict": "agree"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 400 and "blinded read" in refused.content.decode()
    response = radiologist_client.post(reverse("clinical:review", args=[study.uid, image.pk]),
                                       {"verdict": "corrected", "label": "lung-covid"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    review = Review.objects.get(image=image)
    assert review.blinded and review.verdict == "agree"  # the reader's own class is the AI's
    outcome = ReviewOutcome.objects.get()
    assert outcome.blinded and (outcome.blinded_verdict, outcome.blinded_confirmed_class) == ("agree", "lung-covid")
    study.refresh_from_db()
    assert study.ai_revealed_at is not None and study.top_class == "lung-covid" and study.triage_priority > 0.5
    assert AuditEvent.objects.filter(action="study.ai_revealed", object_id=str(study.pk)).count() == 1
    body = radiologist_client.get(url).content.decode()
    assert "<strong>COVID-19 pneumonia</strong>" in body and "Agree with AI" in body and "Blinded reading" in body

    # After the reveal the reader may amend; the blinded verdict is kept for the report.
    review_create(image=image, verdict="corrected", label="lung-opacity", reader=radiologist)
    outcome.refresh_from_db()
    assert (outcome.verdict, outcome.blinded_verdict, outcome.blinded) == ("corrected", "agree", True)
    assert not Review.objects.order_by("-id").first().blinded


def test_a_multi_image_study_stays_blinded_until_every_image_has_a_verdict(radiologist):
    study = blinded_study(images=2)
    first, second = study.images.order_by("id")
    review_create(image=first, verdict="corrected", label="lung-normal", reader=radiologist)
    study.refresh_from_db()
    assert study.ai_revealed_at is None and study.top_class == ""
    review_create(image=second, verdict="uncertain", reader=radiologist)
    study.refresh_from_db()
    assert study.ai_revealed_at is not None and Review.objects.filter(blinded=True).count() == 2


def test_worklist_shows_no_ai_for_a_blinded_read_and_does_not_order_it_by_ai(radiologist_client):
    urgent_old = study_row(priority=0.95, top_class="lung-covid", minutes_ago=30)
    routine = study_row(priority=0.1, top_class="lung-normal", minutes_ago=20)
    blinded = blinded_study(minutes_ago=10)  # its AI says 0.91 urgent
    body = radiologist_client.get(reverse("clinical:worklist")).content.decode()
    assert "blinded read: AI hidden until you save a verdict" in body
    row = body[body.index(f'data-uid="{blinded.uid}"'):]
    row = row[:row.index("</tr>")]
    assert "COVID-19" not in row and "91.0 %" not in row and "band blinded" in row
    order = [body.index(f'data-uid="{s.uid}"') for s in (urgent_old, blinded, routine)]
    assert order == sorted(order)
    # A filter on the AI's class does not find it either.
    filtered = radiologist_client.get(reverse("clinical:worklist"), {"predicted_class": "lung-covid"}).content.decode()
    assert blinded.uid not in filtered and urgent_old.uid in filtered
