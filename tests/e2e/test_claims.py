"""Several readers (issue 14 item 9) in a real browser: a claim seen by a second reader's
session. Reader A (dr_house) opens a study; reader B (dr_wilson), in another browser context,
sees "being read by dr_house" on the worklist and on the study page, takes it over, and A's
page learns of it through its own heartbeat (static/js/claims.js, sent while A is active).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from clinical.models import StudyClaim
from clinical.services.ingest import image_ingest
from clinical.views import viewer
from radviewer.accounts.roles import RADIOLOGIST
from radviewer.accounts.services import roles_sync
from radviewer.audit.actions import AuditAction
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import chest_png
from tests.support.browser import TEST_PASSWORD, browser_session, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_claim_seen_by_a_second_readers_session(live_server, radiologist, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr(viewer, "claim_heartbeat_seconds", lambda: 1)  # beat every second, not every minute
    roles_sync()
    wilson = get_user_model().objects.create_user(username="dr_wilson", password=TEST_PASSWORD)
    wilson.groups.add(Group.objects.get(name=RADIOLOGIST))
    study = image_ingest(data=chest_png(size=(160, 144), seed=14), filename="claim.png", actor=radiologist).study
    study_url = live_server.url + reverse("clinical:study", args=[study.uid])

    with browser_session() as open_page:
        a, a_errors = open_page(live_server, radiologist.username)
        a.goto(study_url)
        expect(a.locator("#claim-banner .claim-mine")).to_contain_text("You are reading this study")

        b, b_errors = open_page(live_server, wilson.username)
        b.goto(live_server.url + reverse("clinical:worklist"))
        badge = b.locator(f'tr[data-uid="{study.uid}"] .badge.claim')
        expect(badge).to_have_text("being read by dr_house")
        shot(b, "claims-worklist")
        b.locator(f'tr[data-uid="{study.uid}"] a').click()
        b.wait_for_url("**/studies/**")
        expect(b.locator("#claim-banner .claim-other")).to_contain_text("Being read by dr_house since")
        shot(b, "claims-study-other")
        assert StudyClaim.objects.get(study=study).reader == radiologist  # B's visit did not steal it

        b.click("#claim-take-over")
        expect(b.locator("#claim-banner .claim-mine")).to_be_visible()
        assert AuditEvent.objects.filter(action=AuditAction.STUDY_CLAIM_TAKEN_OVER, actor=wilson).count() == 1

        # A is active on the page: its heartbeat brings the news without a reload.
        a.locator("#viewer-canvas").hover()
        a.mouse.move(40, 40)
        expect(a.locator("#claim-banner .claim-other")).to_contain_text("Being read by dr_wilson", timeout=10_000)
        expect(a.locator("#claim-take-over")).to_be_visible()
        shot(a, "claims-taken-over")

        # B releases; the worklist then shows the study as free.
        b.click("#claim-release")
        expect(b.locator("#claim-banner .claim-free")).to_contain_text("Released")
        b.goto(live_server.url + reverse("clinical:worklist"))
        expect(b.locator(f'tr[data-uid="{study.uid}"]')).to_be_visible()
        expect(b.locator(f'tr[data-uid="{study.uid}"] .badge.claim')).to_have_count(0)
    assert a_errors == []
    assert b_errors == []
