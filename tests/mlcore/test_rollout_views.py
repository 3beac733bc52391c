"""The rollout page end to end through URLs: for ML admins only, the tables with their
figures, the guard's runs and boundary plot, the operating characteristic with what-if
inputs (bad ones get a message), and the guard's banner on /ml/ after a rollback."""

from __future__ import annotations

import re

import pytest

from mlcore.models import ReviewOutcome, RolloutPolicy
from mlcore.services.promotion import alias_move
from mlcore.services.rollout_guard import guard_run
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


def outcome(arm: str, version: str, i: int, *, agree: bool, cls: str = "lung-covid", case: str = "") -> None:
    ReviewOutcome.objects.create(model_name=NAME, model_version=version, arm=arm, prediction_ref=f"{arm}{version}-{i}",
                                 case_ref=case or f"{arm}-{i}", predicted_class=cls if agree else "lung-normal",
                                 confirmed_class=cls, verdict="agree" if agree else "corrected")


@pytest.fixture
def canary(registry, ml_admin):
    evaluate("2")
    alias_move(actor=ml_admin, alias="candidate", version="2", reason="")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="20 %")
    RolloutPolicy.objects.update_or_create(name=NAME, defaults={"canary_percent": 20})


def test_rollout_page_is_for_ml_admins_only(registry, radiologist_client, client):
    assert radiologist_client.get("/ml/rollout/").status_code == 403
    assert client.get("/ml/rollout/").status_code in (302, 403)


def test_page_without_any_reads(registry, ml_admin_client):
    body = ml_admin_client.get("/ml/rollout/").content.decode()
    assert "Rollout: radviewer-triage" in body and 'href="/ml/rollout/"' in body and 'aria-current="page"' in body
    assert "No reads recorded yet." in body and "No canary." in body
    assert "The guard has not run yet" in body
    # The operating characteristic still answers for the default share (10 %) and the starter's agreement.
    assert "assumed 0.870" in body and "10.0 % canary share" in body


def test_tables_runs_plot_and_operating_characteristic(canary, ml_admin_client):
    for i in range(60):
        outcome("production", "1", i, agree=i < 54, case=f"img{i}")
        outcome("shadow", "2", i, agree=i < 50, case=f"img{i}")  # the candidate in shadow, same studies
    for i in range(60):
        outcome("canary", "2", i, agree=i < 33)
    run = guard_run(name=NAME)
    assert run.decision == "rollback"
    response = ml_admin_client.get("/ml/rollout/?volume=200")
    assert response.status_code == 200
    body = response.content.decode()
    # Per version and arm, with the number of reads.
    assert "0.900 [" in body and "(54/60)" in body and "(33/60)" in body
    # Shadow paired: 50 both right, 0 only shadow, 4 only production, 6 neither.
    paired = body[body.index('id="shadow-paired"'):body.index('id="canary-unpaired"')]
    assert "Shadow v2 vs production v1" in paired and "0 / 4" in paired and "-0.067 [" in paired
    assert "exact binomial" in paired
    # The guard's run and its boundary plot (inline SVG, no style attributes: CSP).
    guard = body[body.index('id="guard"'):body.index('id="operating-characteristic"')]
    assert "Rolled back" in guard and "<svg" in guard and "log-likelihood ratio" in guard.lower()
    assert ' style="' not in body and "<script>" not in body
    # The banner (the canary was rolled back by the guard).
    assert "The canary guard rolled canary v2 back" in body
    # Operating characteristic at the asked volume; measured production agreement (0.900).
    oc = body[body.index('id="operating-characteristic"'):]
    assert "200 read studies/day" in oc and "assumed 0.900" in oc
    assert re.search(r"A 10-point drop at a 10\.0 % canary share and 200 read studies/day is detected after\s+~\d+ studies", oc)
    assert oc.count("<tr>") >= 5


def test_canary_vs_production_table_while_the_canary_runs(canary, ml_admin_client):
    for i in range(20):
        outcome("production", "1", i, agree=i < 18)
        outcome("canary", "2", i, agree=i < 16)
    body = ml_admin_client.get("/ml/rollout/?share=25").content.decode()
    unpaired = body[body.index('id="canary-unpaired"'):body.index('id="guard"')]
    assert "Canary v2" in unpaired and "(16/20)" in unpaired and "(18/20)" in unpaired and "-0.100 [" in unpaired
    assert "25.0 % canary share" in body


@pytest.mark.parametrize("query, message", [
    ("share=70", "the canary share (%) must be between 1 and 50"),
    ("share=abc", "the canary share (%) must be a number"),
    ("volume=-3", "studies per day must be between 1 and 100000"),
    ("share=nan", "the canary share (%) must be between 1 and 50"),
])
def test_bad_what_if_inputs_get_a_message(registry, ml_admin_client, query, message):
    response = ml_admin_client.get(f"/ml/rollout/?{query}")
    assert response.status_code == 200 and message in response.content.decode()


def test_dashboard_banner_after_a_rollback_until_a_new_canary(canary, ml_admin_client, ml_admin):
    assert "The canary guard rolled" not in ml_admin_client.get("/ml/").content.decode()
    for i in range(60):
        outcome("production", "1", i, agree=i < 57)
        outcome("canary", "2", i, agree=i < 30)
    run = guard_run(name=NAME)
    body = ml_admin_client.get("/ml/").content.decode()
    assert "The canary guard rolled canary v2 back" in body and f"/ml/changes/{run.change_record_id}/" in body
    alias_move(actor=ml_admin, alias="canary", version="2", reason="fixed the preprocessing, try again")
    assert "The canary guard rolled" not in ml_admin_client.get("/ml/").content.decode()
