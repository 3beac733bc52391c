"""Routing between production, canary and shadow (issue 11, part A): the canary share set
from the console, sticky by study UID; the shadow candidate after production at lower
priority; the rollout policy service's rules and its records; the console form."""

from __future__ import annotations

import random

import pytest
from kombu import Connection

from clinical.models import Prediction, Study
from clinical.services.ingest import image_ingest
from clinical.services.predictions import prediction_mark_failed, prediction_retry
from clinical.services.reviews import review_create
from clinical.tasks import run_prediction
from mlcore.ml import tracking
from mlcore.models import ChangeRecord, ReviewOutcome, RolloutPolicy
from mlcore.services.inference import canary_bucket, choose_model, shadow_bucket, shadow_route
from mlcore.services.promotion import alias_move
from mlcore.services.registry import registry_sync
from mlcore.services.rollout import RolloutError, rollout_policy_update
from radviewer.audit.models import AuditEvent
from radviewer.lib.tasks import LOW_PRIORITY, enqueue_on_commit
from tests.clinical.factories import chest_png
from tests.support.brokers import OwnRedis, celery_broker
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


def uids(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"2.25.{rng.getrandbits(127)}" for _ in range(n)]


def set_alias(alias: str, version: str) -> None:
    """An alias moved in MLflow directly and mirrored (the gate is promotion's subject)."""
    tracking.set_alias(NAME, alias, version)
    registry_sync(name=NAME)


@pytest.fixture
def canary(registry):
    set_alias("canary", "2")
    return registry


@pytest.fixture
def shadow(registry, ml_admin):
    """v1 production, v2 candidate running in shadow on every study."""
    set_alias("candidate", "2")
    rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, shadow_percent=100,
                          reason="score v2 against readers")
    return registry


# --- canary share and stickiness -------------------------------------------------------------

@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50])
def test_realised_canary_share_over_1000_studies_is_within_3_points(canary, ml_admin, percent):
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=percent, reason="canary step")
    routes = [choose_model(study_uid=u) for u in uids(1000)]
    share = 100 * sum(r.arm == "canary" for r in routes) / len(routes)
    assert abs(share - percent) <= 3, share
    assert {r.version for r in routes if r.arm == "canary"} == {"2"}
    assert {r.version for r in routes if r.arm == "production"} == {"1"}


def test_share_zero_routes_nothing_to_the_canary(canary):
    assert all(choose_model(study_uid=u).arm == "production" for u in uids(300))


def test_routing_is_sticky_by_study_uid_and_grows_by_adding_studies(canary, ml_admin):
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="start")
    sample = uids(500, seed=3)
    first = {u: choose_model(study_uid=u).arm for u in sample}
    assert first == {u: choose_model(study_uid=u).arm for u in sample}  # same UID, same arm
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=30, reason="widen")
    wider = {u: choose_model(study_uid=u).arm for u in sample}
    # A larger share keeps every study that was on the canary there (the hash is the bucket).
    assert all(wider[u] == "canary" for u in sample if first[u] == "canary")
    assert {u for u in sample if wider[u] == "canary"} == {u for u in sample if canary_bucket(u) < 30}


def test_each_prediction_records_its_arm_and_a_retry_keeps_it(canary, ml_admin, radiologist):
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=50, reason="half")
    seen = {}
    # A PNG study gets a random UID, so the arm is a coin flip per upload: go on until both
    # arms have one (8 uploads missed one arm 1 time in 128; 40 miss it 1 time in 5e11).
    for seed in range(40):
        outcome = image_ingest(data=chest_png(seed=400 + seed), filename=f"c{seed}.png", actor=radiologist)
        p = outcome.image.predictions.get()
        expected = "canary" if canary_bucket(outcome.study.uid) < 50 else "production"
        assert (p.arm, p.model_version) == (expected, "2" if expected == "canary" else "1")
        seen[p.arm] = outcome
        if seed >= 7 and len(seen) == 2:
            break
    assert set(seen) == {"canary", "production"}
    # A failed canary prediction retried goes to the canary again (same UID, same arm).
    image = seen["canary"].image
    prediction_mark_failed(prediction_id=image.predictions.get().pk, reason="worker lost")
    retried = prediction_retry(image=image, actor=radiologist)
    assert (retried.arm, retried.model_version) == ("canary", "2")
    assert image.predictions.count() == 1


# --- the policy service: records, stamps, bad input --------------------------------------------

def test_starting_a_canary_stamps_it_and_writes_a_change_record_and_audit(canary, ml_admin):
    policy = rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="first 10 %")
    assert policy.canary_started_at is not None
    started = policy.canary_started_at
    record = ChangeRecord.objects.get(alias="canary", kind=ChangeRecord.Kind.PROMOTION)
    assert (record.from_version, record.to_version, record.reason) == ("2", "2", "first 10 %")
    assert record.sections["routing_change"] == {"canary_percent": {"from": 0, "to": 10}}
    assert record.sections["update_procedure"]["canary_percent"] == 10
    assert "10 %" in record.sections["update_procedure"]["routing"]
    event = AuditEvent.objects.get(action="model.rollout_changed")
    assert event.details["before"]["canary_percent"] == 0 and event.details["after"]["canary_percent"] == 10
    # Widening keeps the start; stopping and starting again stamps anew.
    assert rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=20,
                                 reason="wider").canary_started_at == started
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=0, reason="pause")
    assert rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=5,
                                 reason="again").canary_started_at > started


def test_moving_the_canary_alias_restarts_the_canary_clock(canary, ml_admin):
    first = rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="go").canary_started_at
    evaluate("3")
    alias_move(actor=ml_admin, alias="canary", version="3", reason="v3 instead", expected_current="2")
    assert RolloutPolicy.objects.get(name=NAME).canary_started_at > first
    assert choose_model(study_uid=next(u for u in uids(200) if canary_bucket(u) < 10)).version == "3"


def test_shadow_on_stamps_and_records_a_system_change(registry, ml_admin):
    set_alias("candidate", "3")
    policy = rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, shadow_percent=40,
                                   reason="shadow v3")
    assert policy.shadow_candidate and policy.shadow_percent == 40 and policy.shadow_started_at
    record = ChangeRecord.objects.get(alias="candidate", kind=ChangeRecord.Kind.SYSTEM)
    assert record.to_version == "3"
    assert record.sections["update_procedure"]["shadow_candidate"] is True
    assert record.sections["routing_change"] == {"shadow_candidate": {"from": False, "to": True},
                                                 "shadow_percent": {"from": 100, "to": 40}}


def _unchanged(before: dict) -> None:
    policy = RolloutPolicy.objects.filter(name=NAME).first()
    now = {} if policy is None else {"canary_percent": policy.canary_percent,
                                     "shadow_candidate": policy.shadow_candidate,
                                     "shadow_percent": policy.shadow_percent,
                                     "canary_started_at": policy.canary_started_at,
                                     "shadow_started_at": policy.shadow_started_at}
    assert now == before
    assert not ChangeRecord.objects.exclude(kind=ChangeRecord.Kind.OBSERVED).exists()
    assert not AuditEvent.objects.filter(action="model.rollout_changed").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"canary_percent": 51}, "canary share must be from 0 to 50"),
    ({"canary_percent": -1}, "canary share must be from 0 to 50"),
    ({"canary_percent": 12.5}, "whole number"),
    ({"canary_percent": "ten"}, "whole number"),
    ({"canary_percent": True}, "whole number"),
    ({"shadow_percent": 0}, "shadow share must be from 1 to 100"),
    ({"shadow_percent": 101}, "shadow share must be from 1 to 100"),
    ({"shadow_candidate": "maybe"}, "shadow must be on or off"),
    ({"canary_percent": 10, "reason": "  "}, "reason is required"),
])
def test_bad_values_are_refused_and_nothing_changes(canary, ml_admin, kwargs, message):
    with pytest.raises(RolloutError, match=message):
        rollout_policy_update(name=NAME, actor=ml_admin, **{"reason": "x", **kwargs})
    _unchanged({})


def test_canary_with_no_canary_alias_is_refused(registry, ml_admin):
    with pytest.raises(RolloutError, match="no version holds the canary alias"):
        rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="go")
    _unchanged({})


def test_canary_with_no_production_model_is_refused(registry, ml_admin):
    client = tracking.client(registry.MLFLOW_TRACKING_URI)
    client.delete_registered_model_alias(NAME, "production")
    set_alias("canary", "2")
    with pytest.raises(RolloutError, match="no version of radviewer-triage is in production"):
        rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="go")
    _unchanged({})


def test_shadow_with_no_candidate_is_refused(registry, ml_admin):
    with pytest.raises(RolloutError, match="no version holds the candidate alias"):
        rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, reason="go")
    _unchanged({})


def test_shadow_and_canary_of_the_same_version_at_once_is_refused_both_ways(canary, ml_admin):
    set_alias("candidate", "2")  # v2 is canary and candidate
    with pytest.raises(RolloutError, match="cannot be shadow and canary at once"):
        rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, canary_percent=10, reason="both")
    with pytest.raises(RolloutError, match="cannot be shadow and canary at once"):
        rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, reason="shadow")
    _unchanged({})
    # A canary share alone is fine; the shadow of that version is then still refused, and
    # refused whole: the share asked with it is not saved either.
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=10, reason="canary only")
    with pytest.raises(RolloutError, match="cannot be shadow and canary at once"):
        rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=True, canary_percent=20, reason="x")
    policy = RolloutPolicy.objects.get(name=NAME)
    assert (policy.canary_percent, policy.shadow_candidate) == (10, False)


def test_nothing_to_change_is_said(canary, ml_admin):
    with pytest.raises(RolloutError, match="nothing to change"):
        rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=0, reason="same")


# --- shadow routing ------------------------------------------------------------------------------

def test_shadow_route_follows_the_policy_and_its_share(shadow, ml_admin):
    sample = uids(1000, seed=5)
    assert all(shadow_route(study_uid=u, served_version="1") == shadow_route(study_uid=u, served_version="1")
               for u in sample[:50])
    assert {shadow_route(study_uid=u, served_version="1").version for u in sample} == {"2"}
    rollout_policy_update(name=NAME, actor=ml_admin, shadow_percent=20, reason="a fifth")
    routed = [u for u in sample if shadow_route(study_uid=u, served_version="1")]
    assert abs(100 * len(routed) / len(sample) - 20) <= 3
    assert set(routed) == {u for u in sample if shadow_bucket(u) < 20}
    # Independent of the canary hash: the shadow samples canary and production studies alike.
    assert 0 < sum(canary_bucket(u) < 20 for u in routed) < len(routed)
    # Never a shadow of the version that served, nor when off.
    assert shadow_route(study_uid=routed[0], served_version="2") is None
    rollout_policy_update(name=NAME, actor=ml_admin, shadow_candidate=False, reason="off")
    assert shadow_route(study_uid=routed[0], served_version="1") is None


def test_shadow_stops_when_its_candidate_takes_production(shadow):
    set_alias("production", "2")
    assert shadow_route(study_uid=uids(1)[0], served_version="1") is None


def test_shadow_prediction_runs_after_production_at_low_priority(shadow, radiologist,
                                                                 django_capture_on_commit_callbacks, monkeypatch):
    sent: list[tuple[dict, dict]] = []
    monkeypatch.setattr("clinical.tasks.run_prediction.apply_async",
                        lambda kwargs, **options: sent.append((kwargs, options)))
    with django_capture_on_commit_callbacks(execute=True):
        outcome = image_ingest(data=chest_png(seed=501), filename="s.png", actor=radiologist)
    production = outcome.image.predictions.get()
    assert (production.arm, production.model_version) == ("production", "1")
    assert sent == [({"prediction_id": production.pk}, {})]  # normal priority
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=production.pk)
    shadow_p = Prediction.objects.get(image=outcome.image, arm="shadow")
    assert (shadow_p.model_version, shadow_p.status) == ("2", "queued")
    assert sent[-1] == ({"prediction_id": shadow_p.pk}, {"priority": LOW_PRIORITY})
    study = Study.objects.get(pk=outcome.study.pk)
    before = (study.status, study.top_class, study.triage_priority)
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=shadow_p.pk)
    shadow_p.refresh_from_db()
    assert shadow_p.status == "succeeded" and shadow_p.top_class
    assert not shadow_p.heatmap_png  # nobody sees it: no heat map is made
    study.refresh_from_db()
    assert (study.status, study.top_class, study.triage_priority) == before
    # The production task delivered again, or a retry, adds no second shadow.
    run_prediction(prediction_id=production.pk)
    prediction_retry(image=outcome.image, actor=radiologist)
    assert outcome.image.predictions.count() == 2


def test_a_shadow_about_to_start_yields_to_a_reader_study_queued_meanwhile(
        shadow, radiologist, django_capture_on_commit_callbacks, monkeypatch):
    first = image_ingest(data=chest_png(seed=505), filename="y1.png", actor=radiologist)
    run_prediction(prediction_id=first.image.predictions.get().pk)
    shadow_p = Prediction.objects.get(image=first.image, arm="shadow")
    second = image_ingest(data=chest_png(seed=506), filename="y2.png", actor=radiologist)  # queued now
    sent: list[tuple[dict, dict]] = []
    monkeypatch.setattr("clinical.tasks.run_prediction.apply_async",
                        lambda kwargs, **options: sent.append((kwargs, options)))
    with django_capture_on_commit_callbacks(execute=True):
        run_prediction(prediction_id=shadow_p.pk)
    shadow_p.refresh_from_db()
    assert (shadow_p.status, shadow_p.attempts, shadow_p.task_id) == ("queued", 0, "")
    assert sent == [({"prediction_id": shadow_p.pk}, {"priority": LOW_PRIORITY})]
    run_prediction(prediction_id=second.image.predictions.get().pk)  # the reader's study first
    run_prediction(prediction_id=shadow_p.pk)  # then nothing waits: the shadow runs
    shadow_p.refresh_from_db()
    assert (shadow_p.status, shadow_p.attempts) == ("succeeded", 1)


def test_a_shadow_failure_never_fails_the_study(shadow, radiologist):
    outcome = image_ingest(data=chest_png(seed=502), filename="f.png", actor=radiologist)
    run_prediction(prediction_id=outcome.image.predictions.get().pk)
    shadow_p = Prediction.objects.get(image=outcome.image, arm="shadow")
    prediction_mark_failed(prediction_id=shadow_p.pk, reason="RuntimeError: candidate broke")
    study = Study.objects.get(pk=outcome.study.pk)
    assert study.status == Study.Status.AWAITING_REVIEW
    assert Prediction.objects.get(pk=shadow_p.pk).status == "failed"


# --- review outcomes: arm and case_ref, paired ------------------------------------------------

def test_a_verdict_writes_paired_outcomes_for_production_and_shadow(shadow, radiologist):
    outcome = image_ingest(data=chest_png(seed=503), filename="r.png", actor=radiologist)
    production = outcome.image.predictions.get()
    run_prediction(prediction_id=production.pk)
    shadow_p = Prediction.objects.get(image=outcome.image, arm="shadow")
    run_prediction(prediction_id=shadow_p.pk)
    shadow_p.refresh_from_db()
    production.refresh_from_db()
    review_create(image=outcome.image, verdict="corrected", label="lung-covid", reader=radiologist)
    rows = {o.arm: o for o in ReviewOutcome.objects.all()}
    assert set(rows) == {"production", "shadow"}
    assert rows["production"].case_ref == rows["shadow"].case_ref == str(outcome.image.pk)
    assert rows["production"].prediction_ref == f"clinical.prediction:{production.pk}"
    assert rows["shadow"].prediction_ref == f"clinical.prediction:{shadow_p.pk}"
    assert (rows["shadow"].model_version, rows["shadow"].predicted_class) == ("2", shadow_p.top_class)
    assert rows["shadow"].confirmed_class == "lung-covid"
    assert rows["shadow"].verdict == ("agree" if shadow_p.top_class == "lung-covid" else "corrected")
    # An amendment replaces both outcomes (one per prediction).
    review_create(image=outcome.image, verdict="uncertain", reader=radiologist)
    assert ReviewOutcome.objects.count() == 2
    assert set(ReviewOutcome.objects.values_list("verdict", flat=True)) == {"uncertain"}


def test_a_shadow_finishing_after_the_verdict_is_scored_then(shadow, radiologist):
    outcome = image_ingest(data=chest_png(seed=504), filename="late.png", actor=radiologist)
    run_prediction(prediction_id=outcome.image.predictions.get().pk)
    review_create(image=outcome.image, verdict="agree", reader=radiologist)
    assert list(ReviewOutcome.objects.values_list("arm", flat=True)) == ["production"]
    run_prediction(prediction_id=Prediction.objects.get(image=outcome.image, arm="shadow").pk)
    shadow_row = ReviewOutcome.objects.get(arm="shadow")
    assert shadow_row.case_ref == str(outcome.image.pk)
    assert shadow_row.confirmed_class == ReviewOutcome.objects.get(arm="production").predicted_class


def test_canary_outcomes_carry_the_canary_arm(canary, ml_admin, radiologist):
    rollout_policy_update(name=NAME, actor=ml_admin, canary_percent=50, reason="half")
    for seed in range(20):
        outcome = image_ingest(data=chest_png(seed=600 + seed), filename=f"k{seed}.png", actor=radiologist)
        if canary_bucket(outcome.study.uid) < 50:
            break
    run_prediction(prediction_id=outcome.image.predictions.get().pk)
    review_create(image=outcome.image, verdict="agree", reader=radiologist)
    row = ReviewOutcome.objects.get()
    assert (row.arm, row.model_version, row.case_ref) == ("canary", "2", str(outcome.image.pk))


# --- the broker takes production work before shadow work -----------------------------------------

def _drain(url: str, options: dict) -> list[str]:
    got = []
    with Connection(url, transport_options=options) as conn:
        queue = conn.SimpleQueue("inference")
        while True:
            try:
                message = queue.get(timeout=2)
            except queue.Empty:
                break
            got.append("low" if message.payload[1]["prediction_id"] >= 1000 else "normal")
            message.ack()
        queue.close()
    return got


def _send_mixed(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(6):  # shadow first: it must still come last
            enqueue_on_commit("clinical.run_prediction", low_priority=True, prediction_id=1000 + i)
        for i in range(6):
            enqueue_on_commit("clinical.run_prediction", prediction_id=i)


def test_filesystem_broker_delivers_production_before_shadow(tmp_path, settings,
                                                             django_capture_on_commit_callbacks):
    folder = tmp_path / "broker"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "control_folder": str(tmp_path / "control"), "store_processed": False}
    settings.TEST_FILESYSTEM_TRANSPORT_OPTIONS = options
    with celery_broker("filesystem://"):
        _send_mixed(django_capture_on_commit_callbacks)
    assert _drain("filesystem://", options) == ["normal"] * 6 + ["low"] * 6


def test_redis_broker_delivers_production_before_shadow(tmp_path, django_capture_on_commit_callbacks):
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        with celery_broker(redis.url):
            _send_mixed(django_capture_on_commit_callbacks)
        assert _drain(redis.url, {}) == ["normal"] * 6 + ["low"] * 6
    finally:
        redis.stop()


# --- the console form -------------------------------------------------------------------------------

URL = "/ml/rollout/policy/"


def test_console_form_sets_canary_and_shadow_with_htmx(canary, ml_admin_client):
    set_alias("candidate", "3")
    page = ml_admin_client.get(URL)
    assert page.status_code == 200 and b'id="rollout-policy"' in page.content
    response = ml_admin_client.post(URL, {"canary_percent": "15", "shadow_candidate": "on", "shadow_percent": "60",
                                          "reason": "start the rollout"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    body = response.content.decode()
    assert "Saved: canary 15 %, shadow on for 60 % of studies." in body and "<html" not in body
    policy = RolloutPolicy.objects.get(name=NAME)
    assert (policy.canary_percent, policy.shadow_candidate, policy.shadow_percent) == (15, True, 60)
    assert ChangeRecord.objects.exclude(kind=ChangeRecord.Kind.OBSERVED).count() == 2


@pytest.mark.parametrize("data, message", [
    ({"canary_percent": "60", "shadow_percent": "100"}, "canary share must be from 0 to 50"),
    ({"canary_percent": "7.5", "shadow_percent": "100"}, "The canary share must be a whole number from 0 to 50."),
    ({"canary_percent": "x", "shadow_percent": "100"}, "The canary share must be a whole number from 0 to 50."),
    ({"canary_percent": "0", "shadow_candidate": "on", "shadow_percent": "100"}, "no version holds the candidate"),
    ({"canary_percent": "10", "shadow_percent": "100", "reason": ""}, "A reason is required"),
])
def test_console_form_bad_input_is_400_with_the_reason_and_changes_nothing(canary, ml_admin_client, data,
                                                                           message):
    response = ml_admin_client.post(URL, {"reason": "r", **data}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert message in response.content.decode()
    _unchanged({})


def test_console_form_same_version_shadow_and_canary_is_400(canary, ml_admin_client):
    set_alias("candidate", "2")
    response = ml_admin_client.post(URL, {"canary_percent": "10", "shadow_candidate": "on", "shadow_percent": "100",
                                          "reason": "both"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "cannot be shadow and canary at once" in response.content.decode()
    _unchanged({})


def test_a_reader_may_not_change_routing(canary, radiologist_client):
    assert radiologist_client.get(URL).status_code == 403
    response = radiologist_client.post(URL, {"canary_percent": "10", "shadow_percent": "100", "reason": "mine"})
    assert response.status_code == 403
    _unchanged({})


def test_the_form_is_linked_from_the_console(canary, ml_admin_client):
    for page in ("/ml/", "/ml/versions/2/promote"):
        assert URL.encode() in ml_admin_client.get(page).content
