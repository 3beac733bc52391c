"""Issue 14 (bug 5, item 13) in a real browser: class hotkeys 1-9 only select and Enter saves;
`a` saves an agreement that Undo withdraws within 10 s; `a` on a running triage saves nothing
and says why. Studies are made with the ingest service (no worker: the triage stays queued
until the test finishes it by hand)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from clinical.models import Prediction, Review, Study
from clinical.services.ingest import image_ingest
from clinical.services.predictions import _study_refresh
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import chest_png
from tests.support.browser import browser_session, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CXR = {
    "lung-covid": 0.05,
    "lung-normal": 0.8,
    "lung-opacity": 0.08,
    "lung-tuberculosis": 0.04,
    "lung-viral-pneumonia": 0.03,
}


def _study(radiologist, seed: int, *, finished: bool) -> tuple[Study, Prediction]:
    outcome = image_ingest(data=chest_png(size=(96, 96), seed=seed), filename=f"keys{seed}.png", actor=radiologist)
    study = outcome.study
    prediction = Prediction.objects.get(image__study=study)
    if finished:  # what the worker would store: a chest X-ray, "No finding" on top, in scope
        Prediction.objects.filter(pk=prediction.pk).update(
            status=Prediction.Status.SUCCEEDED,
            probabilities=CXR,
            top_class="lung-normal",
            confidence=0.8,
            scope="cxr",
            scope_source="model",
            scope_probability=0.97,
            out_of_scope=False,
        )
        Study.objects.filter(pk=study.pk).update(scope=Study.Scope.CXR, scope_source="model")
        with transaction.atomic():  # it locks the study row (PostgreSQL refuses that outside one)
            _study_refresh(study)
    else:
        Prediction.objects.filter(pk=prediction.pk).update(status=Prediction.Status.RUNNING)
    study.refresh_from_db()
    return study, prediction


def test_class_keys_select_enter_saves_a_agrees_undo_withdraws(live_server, production_model, radiologist, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    finished, _ = _study(radiologist, 1, finished=True)
    agreed, _ = _study(radiologist, 2, finished=True)
    running, _ = _study(radiologist, 3, finished=False)
    with browser_session() as open_page:
        page, errors = open_page(live_server, radiologist.username)

        # Key 3 selects the third class of the chest X-ray list, and only selects.
        page.goto(live_server.url + reverse("clinical:study", args=[finished.uid]))
        expect(page.locator("#ai-panel .top-class")).to_contain_text("No finding (CXR)")
        expect(page.locator("#reading-class option[data-n='3']")).to_have_text("3 · Lung opacity (non-COVID)")
        page.locator("#viewer-canvas").click()
        page.keyboard.press("3")
        expect(page.locator("#reading-class")).to_have_value("lung-opacity")
        expect(page.locator("input[name=verdict][value=corrected]")).to_be_checked()
        expect(page.locator("#reading-status")).to_contain_text("Class 3: Lung opacity (non-COVID) selected")
        assert not Review.objects.filter(image__study=finished).exists()  # a digit never saves
        page.keyboard.press("2")  # the AI's own class: that is agreement
        expect(page.locator("input[name=verdict][value=agree]")).to_be_checked()
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        expect(page.locator(".review-history li.latest")).to_contain_text("Lung opacity (non-COVID)")
        expect(page.locator(".saved-undo")).to_contain_text("Saved: Corrected to another class (Lung opacity")
        expect(page.locator("#undo-reading")).to_be_visible()
        review = Review.objects.get(image__study=finished)
        assert (review.verdict, review.label) == ("corrected", "lung-opacity")
        shot(page, "reading-keys-saved")

        # `a` agrees in one keystroke; Undo within 10 s withdraws the reading.
        page.goto(live_server.url + reverse("clinical:study", args=[agreed.uid]))
        expect(page.locator("#ai-panel .top-class")).to_be_visible()
        page.fill("#review-impression", "Clear lungs.")
        page.focus("#viewer-canvas")  # out of the text field: there, `a` is a letter
        page.keyboard.press("a")
        expect(page.locator(".saved-undo")).to_contain_text("Saved: Agree with AI (No finding (CXR))")
        expect(page.locator(".review-history li.latest")).to_contain_text("Impression: Clear lungs.")
        assert Review.objects.filter(image__study=agreed, verdict="agree").exists()
        page.click("#undo-reading")
        expect(page.locator("#review-panel")).to_contain_text("Reading undone")
        expect(page.locator(".review-history")).to_contain_text("No reading yet.")
        expect(page.locator("#study-status")).to_have_text("Awaiting review")
        assert not Review.objects.filter(image__study=agreed).exists()
        assert AuditEvent.objects.filter(action="review.undone").count() == 1

        # `a` while the triage runs: nothing is saved, the panel says why.
        page.goto(live_server.url + reverse("clinical:study", args=[running.uid]))
        expect(page.locator("#ai-panel .running")).to_be_visible()
        page.locator("#viewer-canvas").click()
        page.keyboard.press("a")
        expect(page.locator("#reading-status")).to_contain_text("still running")
        page.keyboard.press("Enter")  # nothing chosen with the keys: Enter saves nothing either
        page.wait_for_timeout(500)
        assert not Review.objects.filter(image__study=running).exists()
        shot(page, "reading-keys-running")

        # The help lists the reading keys.
        page.keyboard.press("?")
        expect(page.locator("#shortcut-help")).to_contain_text("choose the class with that number")
    assert errors == []
