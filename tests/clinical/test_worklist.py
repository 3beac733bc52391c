"""The worklist page: triage order with escalation, filters, Done tab, paging, query count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinical.models import Prediction, Study
from tests.clinical.study_rows import study_row

pytestmark = pytest.mark.django_db
URL = "/worklist/"


def _uids(response) -> list[str]:
    return re.findall(r'data-uid="([^"]+)"', response.content.decode())


def test_url_name_and_permission(client, integration_user, radiologist_client):
    assert reverse("clinical:worklist") == URL
    assert radiologist_client.get(URL).status_code == 200
    client.force_login(integration_user)
    assert client.get(URL).status_code == 403


def test_order_out_of_scope_first_and_old_studies_escalate(radiologist_client, settings):
    settings.WORKLIST_MAX_WAIT_MINUTES = 240
    routine = study_row(priority=0.1, minutes_ago=10)
    urgent = study_row(priority=0.9, top_class="lung-covid", minutes_ago=5)
    out_of_scope = study_row(priority=1.0, out_of_scope=True, minutes_ago=1)
    old_routine = study_row(priority=0.05, minutes_ago=300)  # waited past the maximum
    response = radiologist_client.get(URL)
    assert _uids(response) == [old_routine.uid, out_of_scope.uid, urgent.uid, routine.uid]
    body = response.content.decode()
    assert "badge band escalated" in body and "badge band out-of-scope" in body
    assert "5 h 0 min" in body  # the escalated study's waiting age


def test_columns_show_class_name_probability_and_status(radiologist_client):
    study = study_row(top_class="lung-tuberculosis", confidence=0.734, priority=0.8, modality="CR", images=2)
    image = study.images.first()
    # A shadow-arm prediction is never shown to readers.
    Prediction.objects.create(image=image, model_name="radviewer-triage", model_version="8", arm="shadow",
                              status="succeeded", top_class="lung-tuberculosis", confidence=0.99)
    body = radiologist_client.get(URL).content.decode()
    assert "Tuberculosis" in body and "73.4 %" in body and "99.0 %" not in body
    assert "CR" in body and "Awaiting review" in body and "badge band urgent" in body
    assert "<td>2</td>" in body  # images


def test_filters(radiologist_client):
    cxr = study_row(modality="DX", top_class="lung-covid", priority=0.9)
    oct_ = study_row(modality="OPT", top_class="lung-oct-drusen", priority=0.1)
    ood = study_row(modality="DX", out_of_scope=True, priority=1.0)
    failed = study_row(status=Study.Status.FAILED, top_class="", priority=0.0)
    old = study_row(minutes_ago=3 * 24 * 60)
    assert _uids(radiologist_client.get(URL, {"modality": "OPT"})) == [oct_.uid]
    assert _uids(radiologist_client.get(URL, {"predicted_class": "lung-covid"})) == [cxr.uid]
    assert _uids(radiologist_client.get(URL, {"out_of_scope": "yes"})) == [ood.uid]
    assert ood.uid not in _uids(radiologist_client.get(URL, {"out_of_scope": "no"}))
    assert _uids(radiologist_client.get(URL, {"status": "failed"})) == [failed.uid]
    today = timezone.localdate()
    recent = _uids(radiologist_client.get(URL, {"since": str(today - timedelta(days=1))}))
    assert old.uid not in recent and cxr.uid in recent
    assert _uids(radiologist_client.get(URL, {"until": str(today - timedelta(days=2))})) == [old.uid]


def test_done_tab_lists_signed_off_studies_only(radiologist_client, radiologist):
    open_study = study_row()
    done = study_row(status=Study.Status.SIGNED_OFF)
    Study.objects.filter(pk=done.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    assert _uids(radiologist_client.get(URL)) == [open_study.uid]
    assert _uids(radiologist_client.get(URL, {"done": "1"})) == [done.uid]


def test_done_tab_shows_the_final_reading_not_the_ai_label(radiologist_client, radiologist):
    from clinical.models import Review

    amended = study_row(status=Study.Status.SIGNED_OFF, top_class="lung-covid", confidence=0.558)
    Study.objects.filter(pk=amended.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    image = amended.images.get()
    prediction = image.predictions.get()
    Review.objects.create(image=image, prediction=prediction, reader=radiologist, verdict="agree", label="lung-covid")
    Review.objects.create(image=image, prediction=prediction, reader=radiologist, verdict="corrected",
                          label="lung-opacity", note="consolidation, not COVID", amendment=True)
    unread = study_row(status=Study.Status.SIGNED_OFF)
    Study.objects.filter(pk=unread.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    body = radiologist_client.get(URL, {"done": "1"}).content.decode()
    rows = dict(re.findall(r'<tr class="[^"]*" data-uid="([^"]+)">(.*?)</tr>', body, re.S))
    final = re.search(r'<td class="final-reading">(.*?)</td>', rows[amended.uid], re.S).group(1)
    assert final == "Lung opacity (non-COVID)"
    assert "COVID-19 pneumonia" in rows[amended.uid]  # the AI's label stays, in its own column
    assert "no reading" in rows[unread.uid]
    assert re.search(r'<th [^>]*><a [^>]*data-sort="reading">Final reading', body)
    assert "Final reading" not in radiologist_client.get(URL).content.decode()


def test_htmx_refresh_returns_the_table_partial_that_polls(radiologist_client):
    study_row()
    body = radiologist_client.get(URL, {"modality": "DX"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in body and 'id="worklist-table"' in body
    assert 'hx-trigger="every 10s"' in body and "modality=DX" in body


def test_pages_of_fifty(radiologist_client):
    for _ in range(55):
        study_row()
    assert len(_uids(radiologist_client.get(URL))) == 50
    assert len(_uids(radiologist_client.get(URL, {"page": 2}))) == 5


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(URL).status_code == 200
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_rows(radiologist_client, django_assert_max_num_queries):
    for _ in range(3):
        study_row(images=2)
    few = _queries(radiologist_client)
    for _ in range(27):
        study_row(images=2)
    assert _queries(radiologist_client) == few
    with django_assert_max_num_queries(9):  # 4 session/user/permissions, 5 for the page (band counts included)
        radiologist_client.get(URL)


@pytest.mark.parametrize(("minutes", "text"), [(0, "< 1 min"), (45, "45 min"), (192, "3 h 12 min"), (60 * 50, "2 d 2 h")])
def test_waiting_age_format(minutes, text):
    from clinical.templatetags.clinical_tags import format_duration

    assert format_duration(timedelta(minutes=minutes)) == text
