"""The console's promotion pages end to end through URLs: the dashboard, the promotion form
(gate verdict, block, override, moved meanwhile), rollback, change records and their
exports, the alias timeline and a study's serving provenance."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from mlcore.ml import tracking
from mlcore.models import AliasEvent, ChangeRecord, ModelAlias
from mlcore.services.promotion import alias_move
from radviewer.audit.models import AuditEvent
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


def test_console_pages_are_for_ml_admins_only(registry, radiologist_client):
    record = ChangeRecord.objects.get()
    for url in ("/ml/", "/ml/versions/2/promote", "/ml/changes/", f"/ml/changes/{record.pk}/",
                f"/ml/changes/{record.pk}.json", f"/ml/changes/{record.pk}/print", "/ml/timeline/",
                "/ml/criteria/"):
        assert radiologist_client.get(url).status_code == 403, url
    assert radiologist_client.post("/ml/rollback", {"reason": "x"}).status_code == 403
    assert not AuditEvent.objects.filter(action="change_record.exported").exists()


def test_dashboard_shows_every_alias_links_and_no_store_path(registry, ml_admin_client, ml_admin):
    evaluate("2")
    alias_move(actor=ml_admin, alias="candidate", version="2", reason="")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="10 %")
    body = ml_admin_client.get("/ml/").content.decode()
    row = body[body.index('<td><a href="/ml/versions/2/">v2</a>'):].split("</tr>")[0]
    assert "alias-canary" in row and "alias-candidate" in row  # both aliases of v2
    assert "/ml/versions/2/promote" in body and "MLflow store on this server" in body
    assert "sqlite" not in body and str(registry.MLFLOW_TRACKING_URI) not in body
    assert "Alias timeline" in body and "Move observed in the MLflow registry" in body
    # With an MLflow UI configured, the registry and each version link to it.
    registry.MLFLOW_UI_URL = "https://mlflow.example.org"
    body = ml_admin_client.get("/ml/").content.decode()
    assert f'href="https://mlflow.example.org/#/models/{NAME}"' in body
    assert f"https://mlflow.example.org/#/models/{NAME}/versions/2" in body
    # htmx: the timeline partial only.
    partial = ml_admin_client.get("/ml/", headers={"HX-Request": "true"}).content.decode()
    assert 'id="alias-timeline"' in partial and "<html" not in partial


def test_promotion_form_blocks_then_override_promotes(registry, ml_admin_client, ml_admin):
    page = ml_admin_client.get("/ml/versions/2/promote?alias=production").content.decode()
    assert "evaluation report on the locked set" in page and "blocked" in page
    assert 'name="expected_production" value="1"' in page
    form = {"alias": "production", "reason": "better on final_eval", "expected_production": "1"}
    blocked = ml_admin_client.post("/ml/versions/2/promote", form)
    assert blocked.status_code == 422
    body = blocked.content.decode()
    assert "gate blocks" in body and "criterion-failed" in body and "better on final_eval" in body  # form kept
    assert tracking.get_version_by_alias(NAME, "production", tracking_uri=registry.MLFLOW_TRACKING_URI) == "1"
    done = ml_admin_client.post("/ml/versions/2/promote",
                                {**form, "override_justification": "reader study next week covers it"})
    record = ChangeRecord.objects.get(kind="promotion")
    assert done.status_code == 302 and done["Location"] == f"/ml/changes/{record.pk}/"
    assert record.overridden and record.actor == ml_admin
    assert ModelAlias.objects.get(alias="production").model_version.version == "2"
    assert AuditEvent.objects.filter(action="model.gate_blocked").count() == 1
    assert AuditEvent.objects.filter(action="model.gate_overridden").count() == 1


def test_stale_promotion_form_is_refused_with_the_winner_named(registry, ml_admin_client, django_user_model):
    evaluate("3")
    other = django_user_model.objects.create_user(username="other_admin", password="pw-for-tests-123")
    alias_move(actor=other, alias="candidate", version="3", reason="", expected_current="")
    evaluate("2")
    stale = ml_admin_client.post("/ml/versions/2/promote", {"alias": "candidate", "expected_candidate": ""})
    assert stale.status_code == 409
    assert "moved meanwhile by other_admin" in stale.content.decode()
    assert ModelAlias.objects.get(alias="candidate").model_version.version == "3"
    page = ml_admin_client.get("/ml/versions/9/promote")
    assert page.status_code == 404


def test_already_there_is_said_on_the_form(registry, ml_admin_client):
    response = ml_admin_client.post("/ml/versions/1/promote",
                                    {"alias": "production", "reason": "r", "expected_production": "1"})
    assert response.status_code == 422 and "already there" in response.content.decode()


def test_roll_back_button_and_the_timeline_page(registry, ml_admin_client, ml_admin):
    evaluate("2")
    alias_move(actor=ml_admin, alias="production", version="2", reason="better")
    between = timezone.now()
    body = ml_admin_client.get("/ml/").content.decode()
    assert "Roll production back from v2 to v1" in body
    assert ml_admin_client.post("/ml/rollback", {"reason": "", "expected_current": "2"}).status_code == 302
    assert not ChangeRecord.objects.filter(kind="rollback").exists()  # a reason is required
    response = ml_admin_client.post("/ml/rollback", {"reason": "readers disagree", "expected_current": "2"})
    record = ChangeRecord.objects.get(kind="rollback")
    assert response["Location"] == f"/ml/changes/{record.pk}/"
    assert ModelAlias.objects.get(alias="production").model_version.version == "1"
    page = ml_admin_client.get("/ml/timeline/", {"at": between.isoformat()}).content.decode()
    served = page[page.index('id="served"'):page.index("Every interval")]
    assert '<a href="/ml/versions/2/">v2</a>' in served
    assert page.count("Rollback") >= 1 and page.count("Promotion") >= 1
    bad = ml_admin_client.get("/ml/timeline/", {"at": "yesterday-ish"})
    assert bad.status_code == 400 and "not a date and time" in bad.content.decode()
    partial = ml_admin_client.get("/ml/timeline/", {"at": between.isoformat()}, headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode() and "v2" in partial.content.decode()
    assert AliasEvent.objects.filter(alias="production").count() == 3


def test_remove_canary_from_the_dashboard(registry, ml_admin_client, ml_admin):
    evaluate("2")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="r")
    response = ml_admin_client.post("/ml/aliases/canary/remove", {"reason": "disagrees", "expected_current": "2"})
    assert response.status_code == 302 and not ModelAlias.objects.filter(alias="canary").exists()
    assert ChangeRecord.objects.filter(kind="removal", alias="canary").exists()


def test_change_record_page_and_exports(registry, ml_admin_client, ml_admin):
    evaluate("2")
    record = alias_move(actor=ml_admin, alias="production", version="2", reason="better on final_eval")
    page = ml_admin_client.get(f"/ml/changes/{record.pk}/").content.decode()
    for heading in ("Description of the modification", "Data management", "Retraining",
                    "Performance evaluation", "Update procedure"):
        assert heading in page
    assert "better on final_eval" in page and "one action: /ml/ Roll back" in page
    listing = ml_admin_client.get("/ml/changes/").content.decode()
    assert f"/ml/changes/{record.pk}/" in listing
    exported = ml_admin_client.get(f"/ml/changes/{record.pk}.json")
    assert exported["Content-Type"] == "application/json"
    data = json.loads(exported.content)
    assert data["to_version"] == "2" and data["actor"] == "ml_admin"
    assert data["sections"]["performance_evaluation"]["passed"] is True
    printable = ml_admin_client.get(f"/ml/changes/{record.pk}/print").content.decode()
    assert "change-print" in printable and 'class="topbar"' not in printable and "@media print" not in printable
    assert "Performance evaluation" in printable
    formats = sorted(AuditEvent.objects.filter(action="change_record.exported").values_list("details__format",
                                                                                             flat=True))
    assert formats == ["json", "print"]
    assert ml_admin_client.get("/ml/changes/99999/").status_code == 404


def test_criteria_page_validates_and_saves(registry, ml_admin_client):
    fields = {"max_urgent_sensitivity_drop": "0.02", "max_ece": "1.5", "max_macro_f1_drop": "0.01",
              "forbid_synthetic_in_production": "on"}
    refused = ml_admin_client.post("/ml/criteria/", fields)
    assert refused.status_code == 422 and "between 0 and 1" in refused.content.decode()
    saved = ml_admin_client.post("/ml/criteria/", {**fields, "max_ece": "0.08"})
    assert saved.status_code == 302
    assert AuditEvent.objects.get(action="model.criteria_changed").details["after"]["max_ece"] == 0.08


def test_dashboard_queries_do_not_grow_with_versions(settings, ml_admin_client, django_assert_max_num_queries):
    """50 versions, a long timeline: a fixed number of queries (the page target is 300 ms)."""
    from mlcore.models import ModelVersion

    settings.MLFLOW_REGISTERED_MODEL = NAME
    now = timezone.now()
    versions = ModelVersion.objects.bulk_create(
        [ModelVersion(name=NAME, version=str(i), registered_at=now) for i in range(1, 51)])
    for alias, v in (("production", versions[0]), ("canary", versions[1]), ("candidate", versions[1])):
        ModelAlias.objects.create(name=NAME, alias=alias, model_version=v)
    for i in range(40):
        record = ChangeRecord.objects.create(name=NAME, alias="production", to_version=str(i + 1))
        AliasEvent.objects.create(name=NAME, alias="production", version=str(i + 1), change_record=record,
                                  started_at=now, ended_at=None if i == 39 else now)
    with django_assert_max_num_queries(12):
        response = ml_admin_client.get("/ml/")
    assert response.status_code == 200 and response.content.decode().count("/promote") == 50
