"""Reading claims (issue 14 item 9): a study opened for reading is claimed, others see
"being read by X", the claim lapses after inactivity, is taken over deliberately (audited),
released by its reader or at sign-off; the worklist shows claims in one query, "Mine" lists
the reader's studies and ``n`` skips studies another reader holds."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinical.models import Study, StudyClaim
from clinical.selectors.claims import active_claims, claim_heartbeat_seconds, study_claim_state
from clinical.selectors.worklist import worklist_next_uid
from clinical.services.claims import study_claim, study_claim_release, study_claim_take_over
from clinical.services.reviews import review_create, study_sign_off
from radviewer.accounts.roles import RADIOLOGIST
from radviewer.accounts.services import roles_sync
from radviewer.audit.actions import AuditAction
from radviewer.audit.models import AuditEvent
from tests.clinical.study_rows import study_row

pytestmark = pytest.mark.django_db
WORKLIST = "/worklist/"


@pytest.fixture
def second_radiologist(db):
    roles_sync()
    user = get_user_model().objects.create_user(username="dr_wilson", password="pw-for-tests-123")
    user.groups.add(Group.objects.get(name=RADIOLOGIST))
    return user


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _uids(response) -> list[str]:
    return re.findall(r'data-uid="([^"]+)"', response.content.decode())


# --- services and selectors --------------------------------------------------------------------


def test_opening_claims_once_and_reopening_only_extends(radiologist):
    study = study_row()
    t0 = timezone.now()
    state = study_claim(study=study, reader=radiologist, now=t0)
    assert state.mine and state.claim.reader == radiologist and state.claim.claimed_at == t0
    study_claim(study=study, reader=radiologist, now=t0 + timedelta(minutes=5))
    study_claim(study=study, reader=radiologist, now=t0 + timedelta(minutes=9))
    claim = StudyClaim.objects.get(study=study)
    assert claim.claimed_at == t0 and claim.last_seen_at == t0 + timedelta(minutes=9)
    events = _events(AuditAction.STUDY_CLAIMED)
    assert len(events) == 1 and events[0].actor == radiologist and events[0].object_id == str(study.pk)


def test_a_live_claim_is_not_stolen_but_an_expired_one_is_taken(radiologist, second_radiologist, settings):
    settings.CLAIM_TIMEOUT_MINUTES = 10
    study = study_row()
    t0 = timezone.now()
    study_claim(study=study, reader=radiologist, now=t0)
    seen = study_claim(study=study, reader=second_radiologist, now=t0 + timedelta(minutes=9, seconds=59))
    assert not seen.mine and seen.other_reader == "dr_house" and seen.can_claim
    assert StudyClaim.objects.get(study=study).reader == radiologist
    assert len(_events(AuditAction.STUDY_CLAIMED)) == 1

    later = t0 + timedelta(minutes=10, seconds=1)  # dr_house inactive for longer than the timeout
    assert study_claim_state(study=study, user=second_radiologist, now=later).claim is None
    taken = study_claim(study=study, reader=second_radiologist, now=later)
    assert taken.mine and StudyClaim.objects.get(study=study).reader == second_radiologist
    event = _events(AuditAction.STUDY_CLAIMED)[-1]
    assert event.actor == second_radiologist and event.details["expired_claim_of"] == "dr_house"
    assert _events(AuditAction.STUDY_CLAIM_TAKEN_OVER) == []


def test_take_over_a_live_claim_is_audited(radiologist, second_radiologist):
    study = study_row()
    study_claim(study=study, reader=radiologist)
    state = study_claim_take_over(study=study, reader=second_radiologist)
    assert state.mine and StudyClaim.objects.get(study=study).reader == second_radiologist
    (event,) = _events(AuditAction.STUDY_CLAIM_TAKEN_OVER)
    assert event.actor == second_radiologist and event.details["from"] == "dr_house"
    # dr_house's page now shows dr_wilson, and reopening does not take it back
    back = study_claim(study=study, reader=radiologist)
    assert not back.mine and back.other_reader == "dr_wilson"


def test_release_ends_only_ones_own_claim(radiologist, second_radiologist):
    study = study_row()
    study_claim(study=study, reader=radiologist)
    state = study_claim_release(study=study, reader=second_radiologist)  # not theirs: nothing happens
    assert state.other_reader == "dr_house" and StudyClaim.objects.filter(study=study).exists()
    assert _events(AuditAction.STUDY_CLAIM_RELEASED) == []
    state = study_claim_release(study=study, reader=radiologist)
    assert state.released and state.claim is None and not StudyClaim.objects.filter(study=study).exists()
    (event,) = _events(AuditAction.STUDY_CLAIM_RELEASED)
    assert event.actor == radiologist and event.details["reason"] == "released"


def test_sign_off_ends_the_claim(radiologist):
    study = study_row()
    study_claim(study=study, reader=radiologist)
    review_create(image=study.images.get(), verdict="agree", reader=radiologist)
    study_sign_off(study=study, user=radiologist)
    assert not StudyClaim.objects.filter(study=study).exists()
    (event,) = _events(AuditAction.STUDY_CLAIM_RELEASED)
    assert event.details["reason"] == "signed_off" and event.details["reader"] == "dr_house"
    study.refresh_from_db()
    state = study_claim(study=study, reader=radiologist)  # a signed-off study is not claimed again
    assert state.claim is None and not state.can_claim and not StudyClaim.objects.exists()


def test_users_who_cannot_review_claim_nothing(radiologist, ml_admin):
    study = study_row()
    state = study_claim(study=study, reader=ml_admin)
    assert state.claim is None and not state.can_claim and not StudyClaim.objects.exists()
    study_claim(study=study, reader=radiologist)
    assert study_claim(study=study, reader=ml_admin).other_reader == "dr_house"


def test_active_claims_for_many_studies_in_one_query(radiologist, second_radiologist, settings):
    settings.CLAIM_TIMEOUT_MINUTES = 10
    studies = [study_row() for _ in range(6)]
    now = timezone.now()
    for i, study in enumerate(studies[:4]):
        study_claim(study=study, reader=radiologist if i % 2 else second_radiologist, now=now)
    StudyClaim.objects.filter(study=studies[3]).update(last_seen_at=now - timedelta(minutes=11))  # lapsed
    with CaptureQueriesContext(connection) as ctx:
        claims = active_claims(study_ids=[s.pk for s in studies])
        names = {sid: c.reader.get_username() for sid, c in claims.items()}
    assert len(ctx.captured_queries) == 1
    assert names == {studies[0].pk: "dr_wilson", studies[1].pk: "dr_house", studies[2].pk: "dr_wilson"}


def test_heartbeat_is_more_frequent_than_the_timeout(settings):
    settings.CLAIM_TIMEOUT_MINUTES = 10
    assert claim_heartbeat_seconds() == 60
    settings.CLAIM_TIMEOUT_MINUTES = 1
    assert claim_heartbeat_seconds() == 20


def test_next_skips_studies_another_reader_holds(radiologist, second_radiologist):
    a = study_row(priority=0.9)
    b = study_row(priority=0.5)
    c = study_row(priority=0.1)
    study_claim(study=b, reader=second_radiologist)
    assert worklist_next_uid(after_uid=a.uid, reader_id=radiologist.pk) == c.uid
    assert worklist_next_uid(after_uid=a.uid, reader_id=second_radiologist.pk) == b.uid  # their own
    # from the claimed study itself (dr_house looking at it anyway) the order goes on after it
    assert worklist_next_uid(after_uid=b.uid, reader_id=radiologist.pk) == c.uid


# --- views -------------------------------------------------------------------------------------


def test_study_page_claims_and_shows_the_claim_to_a_second_reader(client, radiologist, second_radiologist):
    study = study_row()
    url = reverse("clinical:study", args=[study.uid])
    client.force_login(radiologist)
    body = client.get(url).content.decode()
    assert "You are reading this study" in body and 'id="claim-release"' in body
    assert 'hx-trigger="claim-heartbeat"' in body
    client.get(url)  # reloading does not write another claim row to the audit log
    assert len(_events(AuditAction.STUDY_CLAIMED)) == 1

    client.force_login(second_radiologist)
    body = client.get(url).content.decode()
    since = timezone.localtime(StudyClaim.objects.get(study=study).claimed_at).strftime("%H:%M")
    assert f"Being read by dr_house</strong> since {since}" in body and 'id="claim-take-over"' in body
    assert StudyClaim.objects.get(study=study).reader == radiologist


def test_worklist_badge_mine_tab_and_constant_queries(client, radiologist, second_radiologist):
    mine_claimed = study_row(priority=0.9)
    mine_read = study_row(priority=0.8)
    theirs = study_row(priority=0.7)
    free = study_row(priority=0.6)
    signed = study_row(status=Study.Status.SIGNED_OFF)
    study_claim(study=mine_claimed, reader=radiologist)
    review_create(image=mine_read.images.get(), verdict="agree", reader=radiologist)
    study_claim(study=theirs, reader=second_radiologist)
    review_create(image=signed.images.get(), verdict="agree", reader=radiologist, amendment=True, note="addendum")
    client.force_login(radiologist)
    response = client.get(WORKLIST)
    body = response.content.decode()
    row = dict(re.findall(r'data-uid="([^"]+)"(.*?)</tr>', body, re.S))
    assert "being read by dr_wilson" in row[theirs.uid] and "being read by you" in row[mine_claimed.uid]
    assert "being read by" not in row[free.uid] and "being read by" not in row[mine_read.uid]
    assert _uids(client.get(WORKLIST, {"mine": "1"})) == [mine_claimed.uid, mine_read.uid]
    tabs = client.get(WORKLIST, {"mine": "1"}).content.decode().split('class="tabs"')[1].split("</nav>")[0]
    assert re.search(r'\?mine=1"[^>]*aria-current="page"[^>]*>Mine</a>', tabs) and tabs.count("aria-current") == 1
    assert _uids(client.get(WORKLIST, {"mine": "1", "done": "1"})) == [signed.uid]  # Done wins

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(WORKLIST).status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    for _ in range(10):
        study_claim(study=study_row(), reader=second_radiologist)
    assert queries() == few


def test_heartbeat_take_over_and_release_views(client, radiologist, second_radiologist, settings):
    settings.CLAIM_TIMEOUT_MINUTES = 10
    study = study_row()
    htmx = {"HTTP_HX_REQUEST": "true"}
    client.force_login(radiologist)
    client.get(reverse("clinical:study", args=[study.uid]))
    StudyClaim.objects.update(last_seen_at=timezone.now() - timedelta(minutes=8))
    beat = client.post(reverse("clinical:claim_heartbeat", args=[study.uid]), **htmx)
    assert beat.status_code == 200 and "You are reading this study" in beat.content.decode()
    assert timezone.now() - StudyClaim.objects.get().last_seen_at < timedelta(minutes=1)
    assert len(_events(AuditAction.STUDY_CLAIMED)) == 1

    client.force_login(second_radiologist)
    beat = client.post(reverse("clinical:claim_heartbeat", args=[study.uid]), **htmx)
    assert "Being read by dr_house" in beat.content.decode() and StudyClaim.objects.get().reader == radiologist
    taken = client.post(reverse("clinical:claim_take_over", args=[study.uid]), **htmx)
    assert taken.status_code == 200 and "You are reading this study" in taken.content.decode()
    assert len(_events(AuditAction.STUDY_CLAIM_TAKEN_OVER)) == 1
    released = client.post(reverse("clinical:claim_release", args=[study.uid]), **htmx).content.decode()
    assert "Released" in released and "hx-trigger" not in released  # no heartbeat re-claims it
    assert not StudyClaim.objects.exists()
    plain = client.post(reverse("clinical:claim_take_over", args=[study.uid]))  # no htmx: back to the page
    assert plain.status_code == 302 and StudyClaim.objects.get().reader == second_radiologist


def test_claim_views_refuse_readers_without_review_and_get(client, ml_admin, radiologist):
    study = study_row()
    client.force_login(ml_admin)
    assert client.post(reverse("clinical:claim_take_over", args=[study.uid])).status_code == 403
    assert client.post(reverse("clinical:claim_release", args=[study.uid])).status_code == 403
    assert client.get(reverse("clinical:claim_heartbeat", args=[study.uid])).status_code == 405
    client.force_login(radiologist)
    assert client.post(reverse("clinical:claim_take_over", args=["2.25.404"])).status_code == 404


def test_take_over_of_a_signed_off_study_says_why(client, radiologist):
    study = study_row(status=Study.Status.SIGNED_OFF)
    client.force_login(radiologist)
    response = client.post(reverse("clinical:claim_take_over", args=[study.uid]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403 and "signed off" in response.content.decode()


def test_signing_off_on_the_page_clears_the_claim_banner(client, radiologist):
    study = study_row()
    client.force_login(radiologist)
    client.get(reverse("clinical:study", args=[study.uid]))
    review_create(image=study.images.get(), verdict="agree", reader=radiologist)
    response = client.post(reverse("clinical:sign_off", args=[study.uid]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "Signed off by dr_house" in body
    assert '<div id="claim-banner" class="claim-banner" hx-swap-oob="true"></div>' in body
    assert not StudyClaim.objects.exists()
