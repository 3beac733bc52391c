"""Safe rollout in a real browser (issue 11): the ML admin puts a candidate in shadow from the
rollout page, readers read studies (two in the viewer, the rest through the same review
service), the paired shadow-vs-production agreement appears; then a canary is started at
50 %, readers keep correcting it, the guard (the beat task's function) rolls it back, and
the page says so with routing stopped.

Two real registered versions of the tiny test model (tests/support/registry.py); every
prediction runs through the real inference task in this process.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from clinical.models import Prediction, Study
from clinical.services.ingest import image_ingest
from clinical.services.reviews import review_create
from clinical.services.rollout import rollout_guard_check
from clinical.tasks import run_prediction
from mlcore.models import ModelAlias, RolloutPolicy
from mlcore.services.promotion import alias_move
from tests.clinical.factories import chest_png
from tests.support.browser import CHROMIUM_ARGS, log_in, watch_errors
from tests.support.browser import chromium as _chromium
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CXR = ("lung-covid", "lung-normal", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")


def _study(radiologist, seed: int) -> Study:
    """A study triaged for real: its served prediction, then the shadow one if routing made one."""
    outcome = image_ingest(data=chest_png(seed=seed), filename=f"r{seed}.png", actor=radiologist)
    served = Prediction.objects.exclude(arm="shadow").get(image=outcome.image)
    run_prediction(prediction_id=served.pk)
    for shadow in Prediction.objects.filter(image=outcome.image, arm="shadow", status="queued"):
        run_prediction(prediction_id=shadow.pk)
    return outcome.study


def _other(cls: str) -> str:
    return next(c for c in CXR if c != cls)


def test_shadow_then_canary_then_the_guard_rolls_it_back(live_server, registry, ml_admin, radiologist, monkeypatch):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    evaluate("2")
    alias_move(actor=ml_admin, alias="candidate", version="2", reason="next candidate")
    rollout_url = live_server.url + reverse("mlcore:rollout")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        admin = browser.new_context(viewport={"width": 1400, "height": 950}).new_page()
        admin.set_default_timeout(20_000)
        errors = watch_errors(admin)
        log_in(admin, live_server, ml_admin.username)

        # 1. Shadow on, from the rollout page's routing form.
        admin.goto(rollout_url)
        admin.check("#id_shadow_candidate")
        admin.fill("#id_shadow_percent", "100")
        admin.fill("#id_reason", "shadow v2 on every study before any canary")
        admin.click("#rollout-policy button[type=submit]")
        expect(admin.locator("#rollout-policy .rollout-policy-now")).to_contain_text("shadow on for 100 %")
        assert RolloutPolicy.objects.get(name=NAME).shadow_candidate

        # 2. Studies arrive; production serves, v2 predicts each in shadow.
        studies = [_study(radiologist, seed) for seed in range(200, 212)]
        assert Prediction.objects.filter(arm="shadow", status="succeeded").count() == len(studies)

        # 3. A radiologist reads two in the viewer (correcting the AI), the rest are read through
        #    the same service; readers never see the shadow's answer.
        reader = browser.new_context(viewport={"width": 1400, "height": 950}).new_page()
        reader.set_default_timeout(20_000)
        reader_errors = watch_errors(reader)
        log_in(reader, live_server, radiologist.username)
        for study in studies[:2]:
            reader.goto(live_server.url + reverse("clinical:study", args=[study.uid]))
            shown = Prediction.objects.get(image__study=study, arm="production")
            reader.check("input[name=verdict][value=corrected]")
            reader.select_option("select[name=label]", _other(shown.top_class))
            reader.click("#review-form button[type=submit]")
            expect(reader.locator("#study-status")).to_have_text("Reviewed")
            assert "98.7" not in reader.content()
        for study in studies[2:]:
            review_create(image=study.images.get(), verdict="agree", reader=radiologist)

        # 4. The paired comparison appears: every read study is a pair.
        admin.goto(rollout_url)
        paired = admin.locator("#shadow-paired")
        expect(paired).to_contain_text("Shadow v2 vs production v1")
        total = paired.locator("tr.total td").first
        expect(total).to_have_text(str(len(studies)))

        # 5. A canary: v2 moves to canary through the gate, the share is set on the page.
        alias_move(actor=ml_admin, alias="canary", version="2", reason="v2 on half of the studies")
        RolloutPolicy.objects.filter(name=NAME).update(guard_min_reads=10)
        admin.goto(rollout_url)
        admin.uncheck("#id_shadow_candidate")
        admin.fill("#id_canary_percent", "50")
        admin.fill("#id_reason", "canary v2 at 50 %")
        admin.click("#rollout-policy button[type=submit]")
        expect(admin.locator("#rollout-policy .rollout-policy-now")).to_contain_text("canary 50 %")

        # 6. Readers keep production's answers and correct the canary's, until the guard acts.
        seed, run = 300, None
        while seed < 420:
            study = _study(radiologist, seed)
            seed += 1
            served = Prediction.objects.exclude(arm="shadow").get(image__study=study)
            label = served.top_class if served.arm == "production" else _other(served.top_class)
            review_create(
                image=study.images.get(),
                verdict="corrected" if served.arm == "canary" else "agree",
                label=label if served.arm == "canary" else "",
                reader=radiologist,
            )
            if seed % 10 == 0:
                run = rollout_guard_check(name=NAME)  # what the beat task runs every minute
                if run is not None and run.decision == "rollback":
                    break
        assert run is not None and run.decision == "rollback", run and (run.decision, run.reason)

        # 7. The page says what the guard did; routing to the canary stopped.
        admin.goto(rollout_url)
        expect(admin.locator(".guard-alert")).to_contain_text("rolled canary v2 back")
        expect(admin.locator("#rollout-policy .rollout-policy-now")).to_contain_text("canary 0 %")
        assert not ModelAlias.objects.filter(name=NAME, alias="canary").exists()
        after = _study(radiologist, 999)
        assert Prediction.objects.get(image__study=after).arm == "production"
        guard_section = admin.locator("section.card", has=admin.locator("h2", has_text="Canary guard"))
        assert re.search(r"roll", guard_section.inner_text(), re.I)
        browser.close()
    assert errors == [] and reader_errors == []
