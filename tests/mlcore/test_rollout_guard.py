"""The canary guard with real rows: a real MLflow store with two registered versions, review
outcomes per arm in the database, the clinical beat task's service (per-arm failures and
latencies from prediction rows), the signed webhook to an ML-alert client on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.utils import timezone

from clinical.models import Prediction, WebhookDelivery
from clinical.selectors.predictions import arm_operations
from clinical.services.api_clients import api_client_create
from clinical.services.rollout import ALERT_EVENT, rollout_guard_check
from clinical.services.webhooks import webhook_attempt
from clinical.tasks import rollout_guard
from mlcore.ml import tracking
from mlcore.models import ChangeRecord, GuardRun, ModelAlias, ReviewOutcome, RolloutPolicy
from mlcore.selectors.rollout import agreement_by_arm, canary_window, paired_shadow_agreement
from mlcore.services.inference import choose_model
from mlcore.services.promotion import alias_move
from mlcore.services.rollout_guard import GUARD_ACTOR, guard_run
from radviewer.audit.models import AuditEvent
from radviewer.celery import beat_schedule
from tests.clinical.api.test_webhooks import Receiver
from tests.clinical.factories import PredictionFactory
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Webhook deliveries the code queued; the test runs the attempt itself."""
    ids: list[int] = []
    monkeypatch.setattr("clinical.tasks.deliver_webhook.apply_async", lambda kwargs: ids.append(kwargs["delivery_id"]))
    return ids


@pytest.fixture
def canary(registry, ml_admin):
    """v1 in production (the registry fixture), v2 through the gate onto canary at 20 %."""
    evaluate("2")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="try v2 on 20 %")
    RolloutPolicy.objects.update_or_create(name=NAME, defaults={"canary_percent": 20})
    return "2"


_refs = iter(range(10 ** 6))


def reads(arm: str, version: str, *, agreed: int, total: int, cls: str = "lung-covid", uncertain: int = 0) -> None:
    """Review outcomes as the clinical side records them: ``agreed`` agreeing reads of
    ``total`` decisive ones (the rest corrected to another class), plus uncertain ones."""
    for i in range(total + uncertain):
        ref = next(_refs)
        ok, decisive = i < agreed, i < total
        ReviewOutcome.objects.create(
            model_name=NAME, model_version=version, arm=arm, prediction_ref=f"p{ref}", case_ref=f"c{ref}",
            predicted_class=cls if ok or not decisive else "lung-normal",
            confirmed_class=cls if decisive else "", verdict=("agree" if ok else "corrected") if decisive else "uncertain")


def alerts_client(url: str):
    return api_client_create(name="ml-alerts", scopes="ml_alerts", default_callback_url=url,
                             allow_private_callbacks=True)


def test_bad_canary_is_rolled_back_routing_stops_and_admins_are_told(canary, queued, django_capture_on_commit_callbacks):
    receiver = Receiver([200])
    try:
        issued = alerts_client(receiver.url)
        api_client_create(name="pacs-only", scopes="read", default_callback_url=receiver.url,
                          allow_private_callbacks=True)  # not an ML-alert client: not told
        reads("production", "1", agreed=54, total=60, uncertain=4)
        reads("canary", "2", agreed=33, total=60, uncertain=2)
        with django_capture_on_commit_callbacks(execute=True):
            run = rollout_guard_check(name=NAME)
        assert run.decision == GuardRun.Decision.ROLLBACK
        assert "worse than production" in run.reason and "33/60" in run.reason and "54/60" in run.reason
        assert run.stats["n_canary"] == 60 and run.stats["n_production"] == 60 and run.stats["llr"] >= run.stats["upper"]
        # The alias is gone in the mirror and in MLflow; routing stopped at once.
        assert not ModelAlias.objects.filter(name=NAME, alias="canary").exists()
        assert tracking.get_version_by_alias(NAME, "canary", tracking_uri=tracking.mlflow.get_tracking_uri()) is None
        assert RolloutPolicy.objects.get(name=NAME).canary_percent == 0
        assert {choose_model(study_uid=f"1.2.3.{i}", name=NAME).arm for i in range(300)} == {"production"}
        # An audited system action with a change record.
        record = run.change_record
        assert record.kind == ChangeRecord.Kind.SYSTEM and record.actor is None and record.actor_label == GUARD_ACTOR
        assert record.alias == "canary" and record.from_version == "2" and record.to_version == ""
        assert record.reason.startswith("canary guard: ")
        assert AuditEvent.objects.filter(action="model.alias_removed", actor_label=GUARD_ACTOR).count() == 1
        guard_event = AuditEvent.objects.get(action="model.canary_guard_rollback")
        assert guard_event.details["canary_percent_before"] == 20 and guard_event.details["change_record"] == record.pk
        # One signed delivery to the ML-alert client, none to the other.
        [delivery] = WebhookDelivery.objects.all()
        assert delivery.study is None and delivery.event == ALERT_EVENT and delivery.client == issued.client
        assert queued == [delivery.pk]
        webhook_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == WebhookDelivery.Status.DELIVERED
        [(headers, body)] = receiver.requests
        expected = hmac.new(issued.webhook_secret.encode(), f"{headers['X-RadViewer-Timestamp']}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert headers["X-RadViewer-Signature"] == f"sha256={expected}"
        payload = json.loads(body)
        assert payload["event"] == ALERT_EVENT and payload["canary_version"] == "2"
        assert payload["production_version"] == "1" and payload["change_record"] == record.pk
        assert AuditEvent.objects.filter(action="webhook.delivered", object_type="clinical.webhookdelivery").exists()
    finally:
        receiver.close()
    # The next minute: nothing left to watch, nothing sent again; one idle row, not one a minute.
    idle = rollout_guard_check(name=NAME)
    assert idle.decision == GuardRun.Decision.IDLE and idle.reason == "no version holds canary"
    assert rollout_guard_check(name=NAME).pk == idle.pk
    assert WebhookDelivery.objects.count() == 1 and GuardRun.objects.count() == 2


def test_good_canary_is_left_alone_and_accepted_without_promotion(canary, queued):
    alerts_client("http://127.0.0.1:9/hook")
    reads("production", "1", agreed=450, total=500)
    reads("canary", "2", agreed=452, total=500)
    run = rollout_guard_check(name=NAME)
    assert run.decision == GuardRun.Decision.ACCEPT and "never automatic" in run.reason
    assert ModelAlias.objects.get(name=NAME, alias="canary").model_version.version == "2"
    assert ModelAlias.objects.get(name=NAME, alias="production").model_version.version == "1"
    assert RolloutPolicy.objects.get(name=NAME).canary_percent == 20
    assert not ChangeRecord.objects.filter(kind=ChangeRecord.Kind.SYSTEM).exists()
    assert not WebhookDelivery.objects.exists() and not queued
    # Accepted stays accepted for this canary (the agreement test is settled), still watched.
    reads("canary", "2", agreed=0, total=40)
    again = rollout_guard_check(name=NAME)
    assert again.decision == GuardRun.Decision.ACCEPT and again.reason.startswith("accepted at ")
    assert ModelAlias.objects.filter(name=NAME, alias="canary").exists()


def test_too_few_reads_waits_and_says_how_many_it_needs(canary):
    reads("production", "1", agreed=40, total=45)
    reads("canary", "2", agreed=2, total=12, uncertain=3)  # dreadful so far, but too few to say
    before = (ChangeRecord.objects.count(), AuditEvent.objects.count())
    run = rollout_guard()  # the beat task itself
    run = GuardRun.objects.get()
    assert run.decision == GuardRun.Decision.WAITING
    assert run.reason == "needs 30 reads per arm, has 12 (canary v2) and 45 (production v1)"
    assert run.stats["needs"] == 18 and run.change_record is None
    assert ModelAlias.objects.filter(name=NAME, alias="canary").exists()
    assert RolloutPolicy.objects.get(name=NAME).canary_percent == 20
    assert (ChangeRecord.objects.count(), AuditEvent.objects.count()) == before


def test_reads_before_the_canary_started_do_not_count(registry, ml_admin):
    reads("canary", "2", agreed=0, total=60)  # an earlier canary period of v2
    reads("production", "1", agreed=50, total=60)
    evaluate("2")
    alias_move(actor=ml_admin, alias="canary", version="2", reason="again")
    window = canary_window(name=NAME)
    assert window.since is not None and window.canary_version == "2"
    run = guard_run(name=NAME)
    assert run.decision == GuardRun.Decision.WAITING and "has 0 (canary v2) and 0 (production v1)" in run.reason


def test_error_rate_and_latency_limits_roll_back_on_their_own(canary):
    reads("production", "1", agreed=10, total=10)
    reads("canary", "2", agreed=10, total=10)  # agreement alone: waiting
    few = {"canary": {"predictions": 4, "failed": 3, "latencies": 1, "latency_p95_ms": 90.0},
           "production": {"predictions": 50, "failed": 0, "latencies": 50, "latency_p95_ms": 80.0}}
    assert guard_run(name=NAME, ops=few).decision == GuardRun.Decision.WAITING  # 3 of 4 is not yet a rate
    slow = {"canary": {"predictions": 40, "failed": 0, "latencies": 40, "latency_p95_ms": 500.0},
            "production": {"predictions": 200, "failed": 0, "latencies": 200, "latency_p95_ms": 100.0}}
    run = guard_run(name=NAME, ops=slow)
    assert run.decision == GuardRun.Decision.ROLLBACK and "5.0x production's 100 ms" in run.reason
    assert run.stats["latency_ratio"] == pytest.approx(5.0)
    assert not ModelAlias.objects.filter(name=NAME, alias="canary").exists()


def test_error_rate_rolls_back(canary):
    failing = {"canary": {"predictions": 40, "failed": 12, "latencies": 28, "latency_p95_ms": 80.0},
               "production": {"predictions": 200, "failed": 1, "latencies": 199, "latency_p95_ms": 80.0}}
    run = guard_run(name=NAME, ops=failing)
    assert run.decision == GuardRun.Decision.ROLLBACK and "error rate is 12/40 (30.0%" in run.reason
    assert RolloutPolicy.objects.get(name=NAME).canary_percent == 0 and run.change_record is not None


def test_idle_without_canary_or_when_switched_off(registry, canary):
    RolloutPolicy.objects.filter(name=NAME).update(guard_enabled=False)
    assert guard_run(name=NAME).decision == GuardRun.Decision.IDLE
    RolloutPolicy.objects.filter(name=NAME).update(guard_enabled=True, guard_alpha=0.5)
    run = guard_run(name=NAME)
    assert run.decision == GuardRun.Decision.IDLE and "settings are invalid" in run.reason and "alpha" in run.reason
    assert ModelAlias.objects.filter(name=NAME, alias="canary").exists()


def test_arm_operations_read_prediction_rows(registry):
    since = timezone.now()
    for latency in (100, 110, 120, 130, 400):
        PredictionFactory(model_name=NAME, model_version="2", arm="canary", latency_ms=latency)
    PredictionFactory(model_name=NAME, model_version="2", arm="canary", status=Prediction.Status.FAILED,
                      top_class="", latency_ms=None)
    PredictionFactory(model_name=NAME, model_version="2", arm="canary", status=Prediction.Status.QUEUED)
    PredictionFactory(model_name=NAME, model_version="1", arm="production", latency_ms=50)
    PredictionFactory(model_name=NAME, model_version="2", arm="shadow", latency_ms=50)  # another arm
    ops = arm_operations(model_name=NAME, since=since, versions={"canary": "2", "production": "1"})
    assert ops["canary"] == {"version": "2", "predictions": 6, "failed": 1, "latencies": 5,
                             "latency_p95_ms": pytest.approx(130 + 0.8 * 270)}
    assert ops["production"]["predictions"] == 1 and ops["production"]["latency_p95_ms"] == 50
    assert arm_operations(model_name=NAME, since=timezone.now(), versions={"canary": "2"})["canary"]["predictions"] == 0


def test_agreement_per_arm_and_shadow_paired_on_the_same_studies(registry):
    # Six studies read by the reader; production and shadow predicted each (same case_ref).
    cases = [  # reader's class, production's top class, shadow's top class
        ("lung-covid", "lung-covid", "lung-covid"), ("lung-covid", "lung-covid", "lung-normal"),
        ("lung-covid", "lung-normal", "lung-normal"), ("lung-opacity", "lung-opacity", "lung-opacity"),
        ("lung-opacity", "lung-normal", "lung-opacity"), ("lung-opacity", "lung-opacity", "lung-normal"),
    ]
    for i, (reading, prod, shadow) in enumerate(cases):
        for arm, version, top in (("production", "1", prod), ("shadow", "2", shadow)):
            ReviewOutcome.objects.create(model_name=NAME, model_version=version, arm=arm, prediction_ref=f"{arm}{i}",
                                         case_ref=f"img-{i}", predicted_class=top, confirmed_class=reading,
                                         verdict="agree" if top == reading else "corrected")
    ReviewOutcome.objects.create(model_name=NAME, model_version="2", arm="shadow", prediction_ref="s-alone",
                                 case_ref="img-alone", predicted_class="lung-covid", confirmed_class="lung-covid",
                                 verdict="agree")
    ReviewOutcome.objects.create(model_name=NAME, model_version="2", arm="shadow", prediction_ref="s-unsure",
                                 case_ref="img-unsure", predicted_class="lung-covid", confirmed_class="",
                                 verdict="uncertain")
    rows = {(a.version, a.arm): a for a in agreement_by_arm(name=NAME)}
    assert (rows[("1", "production")].overall.k, rows[("1", "production")].overall.n) == (4, 6)
    shadow = rows[("2", "shadow")]
    assert (shadow.overall.k, shadow.overall.n, shadow.excluded) == (4, 7, 1)
    assert (shadow.per_class["lung-covid"].k, shadow.per_class["lung-covid"].n) == (2, 4)
    table = paired_shadow_agreement(name=NAME, shadow_version="2", production_version="1")
    overall = table.overall
    assert (overall.both, overall.only_a, overall.only_b, overall.neither) == (2, 1, 2, 1)
    assert overall.difference == pytest.approx(-1 / 6) and overall.method == "exact binomial"
    assert overall.p_value == pytest.approx(1.0)
    covid = table.per_class["lung-covid"]
    assert (covid.both, covid.only_a, covid.only_b, covid.neither) == (1, 0, 1, 1)
    assert table.unpaired_shadow == 1 and table.excluded == 1


def test_beat_runs_the_guard_every_minute():
    entry = beat_schedule(30)["rollout-guard"]
    assert entry["task"] == "clinical.rollout_guard" and entry["schedule"] == 60.0
    assert entry["options"]["queue"] == "default"
