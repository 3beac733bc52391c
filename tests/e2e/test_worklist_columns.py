"""The worklist's columns in a real browser (issue 14 item 8): rows are told apart by the
pseudonym, age band, sex, body part/view, description and source; a header click sorts; a
search finds a study by its pseudonym; the band counts show on the worklist and the home page;
the viewer says "case n of m". No CSP error on the way."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from clinical.models import Study
from clinical.services.ingest import image_ingest
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.browser import browser_session, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _study(patient_id: str, *, age: str, sex: str, priority: float, top: str) -> Study:
    extra = {"PatientAge": age, "PatientSex": sex, "StudyDescription": f"XR CHEST PA {patient_id}"}
    study = image_ingest(
        data=make_cxr_dicom(rows=32, cols=32, patient_id=patient_id, extra=extra), filename="x.dcm"
    ).study
    Study.objects.filter(pk=study.pk).update(
        status=Study.Status.AWAITING_REVIEW, triage_priority=priority, top_class=top
    )
    return Study.objects.get(pk=study.pk)


def test_worklist_columns_sort_search_counts(live_server, radiologist, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    studies = [
        _study("MRN-E2E-1", age="034Y", sex="M", priority=0.9, top="lung-covid"),
        _study("MRN-E2E-2", age="071Y", sex="F", priority=0.2, top="lung-normal"),
        _study("MRN-E2E-3", age="008Y", sex="O", priority=0.7, top="lung-opacity"),
    ]
    by_patient = sorted(studies, key=lambda s: s.patient_key)
    with browser_session() as open_page:
        page, errors = open_page(live_server, radiologist.username)
        page.goto(live_server.url + "/")
        expect(page.locator('.band-counts [data-band="urgent"]')).to_have_text("2")
        expect(page.locator('.band-counts [data-band="routine"]')).to_have_text("1")

        page.goto(live_server.url + reverse("clinical:worklist"))
        table = page.locator("table.worklist")
        headers = table.locator("thead th a").evaluate_all("links => links.map(a => a.firstChild.textContent)")
        for header in ("Patient", "Age", "Sex", "Body part / view", "Description", "Source"):
            assert header in headers
        expect(page.locator('.band-counts [data-band="urgent"]')).to_have_text("2")
        first = table.locator("tbody tr").first
        expect(first).to_have_attribute("data-uid", studies[0].uid)  # triage order
        expect(first.locator("td.patient")).to_have_text(studies[0].patient_key[:11])
        expect(first.locator("td.age")).to_have_text("18-39")
        expect(first.locator("td.sex")).to_have_text("M")
        expect(first.locator("td.view")).to_have_text("CHEST PA")
        expect(first.locator("td.description")).to_have_text("XR CHEST PA")
        expect(table).not_to_contain_text("MRN-E2E")
        shot(page, "worklist-columns")

        table.locator("thead th.col-patient a").click()
        expect(page).to_have_url(re.compile(r"sort=patient"))
        expect(page.locator("thead th.col-patient")).to_have_attribute("aria-sort", "ascending")
        expect(page.locator("thead th.col-priority")).to_have_attribute("aria-sort", "none")
        uids = page.locator("table.worklist tbody tr").evaluate_all("rows => rows.map(r => r.dataset.uid)")
        assert uids == [s.uid for s in by_patient]
        page.locator("thead th.col-patient a").click()
        expect(page.locator("thead th.col-patient")).to_have_attribute("aria-sort", "descending")
        uids = page.locator("table.worklist tbody tr").evaluate_all("rows => rows.map(r => r.dataset.uid)")
        assert uids == [s.uid for s in reversed(by_patient)]

        target = studies[1]
        page.fill("#id_q", target.patient_key[:11])
        page.press("#id_q", "Enter")
        expect(page.locator("table.worklist tbody tr")).to_have_count(1)
        expect(page.locator("table.worklist tbody tr").first).to_have_attribute("data-uid", target.uid)
        expect(page.locator(".search-note")).to_contain_text(target.patient_key[:11])
        shot(page, "worklist-search")

        page.locator("table.worklist tbody tr a").first.click()
        expect(page.locator(".case-position")).to_have_text("(case 3 of 3)")
        assert errors == []
