"""Gated promotion, rollback, alias removal and the alias timeline, on a real MLflow store.

Gate inputs (evaluations on the locked set) are stored rows, as the evaluation service
leaves them; the gate reads nothing else.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mlcore.ml import tracking
from mlcore.models import AliasEvent, ChangeRecord, Evaluation, ModelAlias, ModelVersion
from mlcore.selectors.promotion import alias_timeline, served_at, served_at_all
from mlcore.services.promotion import (
    AliasMovedMeanwhile,
    GateBlocked,
    PromotionError,
    acceptance_criteria_update,
    alias_move,
    alias_remove,
    production_rollback,
)
from mlcore.services.registry import registry_sync
from radviewer.audit.models import AuditEvent
from tests.support.models import register_random_model
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


def holder(alias: str) -> str | None:
    return tracking.get_version_by_alias(NAME, alias, tracking_uri=tracking.mlflow.get_tracking_uri())


def test_starter_style_registration_is_observed_on_the_timeline(registry):
    [event] = AliasEvent.objects.filter(alias="production")
    assert event.version == "1" and event.ended_at is None
    record = event.change_record
    assert record.kind == ChangeRecord.Kind.OBSERVED and record.actor_label == "mlflow registry"
    assert record.to_version == "1" and record.sections["modification"]["to_version"] == "1"
    # The mirror carries the run's params and tags (lineage for the record and the version page).
    v1 = ModelVersion.objects.get(name=NAME, version="1")
    assert v1.params["model_name"] == "vit-tiny-test" and isinstance(v1.tags, dict)
    # Syncing again changes nothing.
    registry_sync(name=NAME)
    assert AliasEvent.objects.count() == 1 and ChangeRecord.objects.count() == 1


def test_candidate_needs_an_evaluation_report(registry, ml_admin):
    with pytest.raises(GateBlocked, match="evaluation report on the locked set") as blocked:
        alias_move(actor=ml_admin, alias="candidate", version="2", reason="")
    assert not blocked.value.verdict.passed
    assert AuditEvent.objects.filter(action="model.gate_blocked", actor=ml_admin).count() == 1
    assert not ModelAlias.objects.filter(alias="candidate").exists() and holder("candidate") is None
    evaluate("2")
    record = alias_move(actor=ml_admin, alias="candidate", version="2", reason="")
    assert record.kind == ChangeRecord.Kind.PROMOTION and not record.overridden
    assert record.gate["passed"] is True
    assert holder("candidate") == "2" and ModelAlias.objects.get(alias="candidate").model_version.version == "2"


def test_calibration_blocks_canary_and_an_override_needs_a_justification(registry, ml_admin):
    evaluate("2", ece=0.2)
    for justification in ("", "   "):
        with pytest.raises(GateBlocked, match="calibration"):
            alias_move(actor=ml_admin, alias="canary", version="2", reason="try it on 10 %",
                       override_justification=justification)
    assert holder("canary") is None and not ChangeRecord.objects.filter(alias="canary").exists()
    record = alias_move(actor=ml_admin, alias="canary", version="2", reason="try it on 10 %",
                        override_justification="ECE measured on 120 images only; canary watched daily")
    assert record.overridden and "120 images" in record.override_justification
    failing = [c for c in record.gate["criteria"] if c["passed"] is False]
    assert [c["name"] for c in failing] == ["calibration (ECE)"]
    assert record.sections["performance_evaluation"]["criteria"] == record.gate["criteria"]
    overridden = AuditEvent.objects.get(action="model.gate_overridden")
    assert overridden.actor == ml_admin and overridden.details["failing"] == ["calibration (ECE)"]
    assert holder("canary") == "2"


def test_synthetic_version_never_goes_to_production_not_even_with_an_override(registry, ml_admin):
    v3 = ModelVersion.objects.get(name=NAME, version="3")
    tracking.client(registry.MLFLOW_TRACKING_URI).set_tag(v3.run_id, "radviewer.data_synthetic", "true")
    registry_sync(name=NAME)
    evaluate("3")
    with pytest.raises(GateBlocked, match="trained on real data"):
        alias_move(actor=ml_admin, alias="production", version="3", reason="demo")
    with pytest.raises(GateBlocked, match="cannot be overridden: trained on real data"):
        alias_move(actor=ml_admin, alias="production", version="3", reason="demo",
                   override_justification="I know what I am doing")
    assert holder("production") == "1" and not ChangeRecord.objects.filter(alias="production", to_version="3").exists()
    # Passing criteria pass: the same version may be a canary (no synthetic rule there).
    assert alias_move(actor=ml_admin, alias="canary", version="3", reason="demo").gate["passed"]


def test_bad_moves_are_refused_clearly(registry, ml_admin):
    evaluate("2")
    with pytest.raises(PromotionError, match="no version '9'"):
        alias_move(actor=ml_admin, alias="candidate", version="9", reason="")
    with pytest.raises(PromotionError, match="unknown alias"):
        alias_move(actor=ml_admin, alias="latest", version="2", reason="x")
    with pytest.raises(PromotionError, match="reason is required"):
        alias_move(actor=ml_admin, alias="production", version="2", reason="  ")
    with pytest.raises(PromotionError, match="already there"):
        alias_move(actor=ml_admin, alias="production", version="1", reason="again")
    with pytest.raises(PromotionError, match="cannot be removed"):
        alias_remove(actor=ml_admin, alias="production", reason="x")
    with pytest.raises(PromotionError, match="nothing to remove"):
        alias_remove(actor=ml_admin, alias="canary", reason="x")
    with pytest.raises(PromotionError, match="nothing to roll back to"):
        production_rollback(actor=ml_admin, reason="bad")
    assert ChangeRecord.objects.exclude(kind=ChangeRecord.Kind.OBSERVED).count() == 0


def test_version_registered_after_the_last_sync_is_found(registry, ml_admin):
    register_random_model(tracking_uri=registry.MLFLOW_TRACKING_URI, name=NAME, alias=None, seed=5)
    assert not ModelVersion.objects.filter(version="4").exists()
    with pytest.raises(GateBlocked):  # found (synced first), then gated: no evaluation yet
        alias_move(actor=ml_admin, alias="candidate", version="4", reason="")
    assert ModelVersion.objects.filter(version="4").exists()


def test_two_admins_promoting_at_once_one_wins_the_other_is_told(registry, ml_admin, django_user_model):
    other = django_user_model.objects.create_user(username="second_admin", password="pw-for-tests-123")
    evaluate("2")
    evaluate("3")
    # Both saw v1 in production; the first commits.
    alias_move(actor=other, alias="production", version="3", reason="better", expected_current="1")
    with pytest.raises(AliasMovedMeanwhile, match="moved meanwhile by second_admin") as refused:
        alias_move(actor=ml_admin, alias="production", version="2", reason="better", expected_current="1")
    assert "now holds v3" in str(refused.value) and "reload" in str(refused.value).lower()
    assert holder("production") == "3"
    assert ChangeRecord.objects.filter(kind="promotion").count() == 1


def test_rollback_restores_the_previous_version_and_the_timeline_shows_both(registry, ml_admin):
    evaluate("2")
    promoted = alias_move(actor=ml_admin, alias="production", version="2", reason="better on final_eval")
    assert promoted.from_version == "1" and holder("production") == "2"
    rolled = production_rollback(actor=ml_admin, reason="complaints from readers")
    assert rolled.kind == ChangeRecord.Kind.ROLLBACK and (rolled.from_version, rolled.to_version) == ("2", "1")
    assert rolled.gate["version"] == "1"  # the verdict is recorded, not enforced
    assert holder("production") == "1" and ModelAlias.objects.get(alias="production").model_version.version == "1"
    events = list(alias_timeline(name=NAME, alias="production"))
    assert [e.version for e in events] == ["1", "2", "1"]
    assert [e.change_record.kind for e in events] == ["rollback", "promotion", "observed"]
    assert events[1].ended_at == events[0].started_at and events[0].ended_at is None
    event = AuditEvent.objects.get(action="model.rolled_back")
    assert event.actor == ml_admin and event.details["previous_version"] == "2"
    assert rolled.sections["update_procedure"]["rollback_plan"].startswith("one action: /ml/ Roll back")


def test_served_at_three_instants(registry, ml_admin):
    evaluate("2")
    [first] = AliasEvent.objects.filter(alias="production")
    before = first.started_at - timedelta(seconds=1)
    during_v1 = first.started_at + timedelta(microseconds=1)
    alias_move(actor=ml_admin, alias="production", version="2", reason="r")
    after = timezone.now() + timedelta(seconds=1)
    assert served_at(name=NAME, at=before) is None
    assert served_at(name=NAME, at=during_v1) == "1"
    assert served_at(name=NAME, at=after) == "2"
    assert served_at_all(name=NAME, at=after) == {"production": "2", "canary": None, "candidate": None}


def test_served_at_is_one_query(registry, django_assert_num_queries):
    with django_assert_num_queries(1):
        served_at(name=NAME, at=timezone.now())


def test_removal_and_moves_made_in_mlflow_each_leave_a_record(registry, ml_admin):
    evaluate("2")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="10 % first")
    removed = alias_remove(actor=ml_admin, alias="canary", reason="disagreements")
    assert removed.kind == ChangeRecord.Kind.REMOVAL and holder("canary") is None
    assert served_at(name=NAME, alias="canary", at=timezone.now()) is None
    # Someone moves candidate in MLflow's UI: the next sync records it as observed.
    tracking.set_alias(NAME, "candidate", "3")
    registry_sync(name=NAME)
    observed = ChangeRecord.objects.get(alias="candidate")
    assert observed.kind == ChangeRecord.Kind.OBSERVED and observed.to_version == "3"
    tracking.client(registry.MLFLOW_TRACKING_URI).delete_registered_model_alias(NAME, "candidate")
    registry_sync(name=NAME)
    assert ChangeRecord.objects.filter(alias="candidate").first().to_version == ""
    kinds = sorted(ChangeRecord.objects.values_list("kind", flat=True))
    assert kinds == ["observed", "observed", "observed", "promotion", "removal"]
    assert AliasEvent.objects.filter(ended_at__isnull=True).count() == 3  # one open interval per alias


def test_change_record_sections_follow_the_pccp(registry, ml_admin):
    evaluate("2")
    record = alias_move(actor=ml_admin, alias="production", version="2", reason="better")
    sections = record.sections
    assert set(sections) == {"modification", "data_management", "retraining", "performance_evaluation",
                             "update_procedure", "who_and_why"}
    assert sections["modification"]["summary"] == f"{NAME}@production: v1 -> v2 (promotion)"
    assert sections["retraining"]["mlflow_run_id"] == ModelVersion.objects.get(version="2").run_id
    assert sections["who_and_why"] == {**sections["who_and_why"], "actor": "ml_admin", "reason": "better"}
    assert sections["update_procedure"]["canary_percent"] == 0
    assert sections["performance_evaluation"]["evaluation_id"] == Evaluation.objects.get(model_version__version="2").pk


def test_acceptance_criteria_update_validates_everything_first(registry, ml_admin):
    with pytest.raises(PromotionError, match="between 0 and 1"):
        acceptance_criteria_update(actor=ml_admin, name=NAME, max_ece=0.1, max_macro_f1_drop=3)
    with pytest.raises(PromotionError, match="unknown criteria"):
        acceptance_criteria_update(actor=ml_admin, name=NAME, min_auc=0.9)
    assert not AuditEvent.objects.filter(action="model.criteria_changed").exists()
    criteria = acceptance_criteria_update(actor=ml_admin, name=NAME, max_ece=0.25)
    assert criteria.max_ece == 0.25 and criteria.updated_by == ml_admin
    evaluate("2", ece=0.2)  # passes under the looser threshold
    assert alias_move(actor=ml_admin, alias="canary", version="2", reason="r").gate["passed"]
    event = AuditEvent.objects.get(action="model.criteria_changed")
    assert event.details["before"]["max_ece"] == 0.05 and event.details["after"]["max_ece"] == 0.25


def test_change_record_counts_label_provenance_in_the_training_store(registry, ml_admin, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from mlcore.ml.data import open_store

    def png(value: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.full((24, 24), value, dtype=np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    store = open_store(tmp_path / "store")
    for i, source in enumerate(("covid19-radiography", "covid19-radiography", "tb-cxr")):
        store.add_sample(split="train", class_key="lung-normal", data=png(10 + i * 40), patient_key=f"p{i}",
                         source=source)
    for i in range(2):
        store.add_sample(split="feedback", class_key="lung-covid", data=png(200 + i * 20), patient_key=f"f{i}",
                         source="radviewer-feedback")
    v2 = ModelVersion.objects.get(name=NAME, version="2")
    client = tracking.client(registry.MLFLOW_TRACKING_URI)
    for key, value in {"store_uri": str(tmp_path / "store"), "data.manifest_hash": store.manifest_hash(),
                       "include_feedback": "True", "git_commit": "a" * 40, "seed": "7",
                       "precision_resolved": "bf16-mixed", "accelerator": "gpu", "epochs": "12"}.items():
        client.log_param(v2.run_id, key, value)
    registry_sync(name=NAME)
    evaluate("2")
    record = alias_move(actor=ml_admin, alias="candidate", version="2", reason="")
    provenance = record.sections["data_management"]["label_provenance"]
    assert provenance["counted_from"] == "dataset store manifest"
    assert (provenance["original_sources"], provenance["confirmed_feedback"]) == (3, 2)
    assert provenance["sources"] == {"covid19-radiography": 2, "tb-cxr": 1}
    retraining = record.sections["retraining"]
    assert (retraining["code_commit"], retraining["seed"], retraining["precision"]) == ("a" * 40, "7", "bf16-mixed")
    assert retraining["recipe"]["epochs"] == "12"
    # The store changed after training: the record says so instead of counting the new rows.
    store.add_sample(split="train", class_key="lung-normal", data=png(250), patient_key="p9", source="tb-cxr")
    evaluate("3")
    v3 = ModelVersion.objects.get(name=NAME, version="3")
    client.log_param(v3.run_id, "store_uri", str(tmp_path / "store"))
    client.log_param(v3.run_id, "data.manifest_hash", "0" * 64)
    registry_sync(name=NAME)
    record = alias_move(actor=ml_admin, alias="candidate", version="3", reason="")
    assert "changed since training" in record.sections["data_management"]["label_provenance"]["note"]
    assert {"param": "epochs", "from": "12", "to": "—"} in record.sections["modification"]["recipe_changes"]


def test_mlflow_refusing_the_move_leaves_nothing_half_done(registry, ml_admin):
    evaluate("3")
    # v3 vanished from MLflow after the last sync: the mirror still lists it.
    tracking.client(registry.MLFLOW_TRACKING_URI).delete_model_version(NAME, "3")
    with pytest.raises(PromotionError, match="MLflow registry refused"):
        alias_move(actor=ml_admin, alias="candidate", version="3", reason="")
    assert not ChangeRecord.objects.filter(alias="candidate").exists()
    assert not AliasEvent.objects.filter(alias="candidate").exists()
    assert not ModelAlias.objects.filter(alias="candidate").exists()
    assert not AuditEvent.objects.filter(action="model.alias_set", actor=ml_admin).exists()
