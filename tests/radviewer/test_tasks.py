import pytest

from radviewer.celery import QUEUES, app, beat_schedule
from radviewer.lib.tasks import house_task, route_task
from radviewer.ops.tasks import record_heartbeat


def test_house_task_sets_reliability_options():
    assert record_heartbeat.acks_late is True
    assert record_heartbeat.reject_on_worker_lost is True
    assert record_heartbeat.soft_time_limit == 20
    assert record_heartbeat.time_limit == 50
    assert record_heartbeat.serializer == "json"
    assert route_task(record_heartbeat.name, (), {}, {}) == {"queue": "default"}


def test_house_task_rejects_unknown_queue_and_bad_limits():
    with pytest.raises(ValueError, match="unknown queue"):
        house_task(queue="gpu")
    with pytest.raises(ValueError, match="time_limit"):
        house_task(soft_time_limit=60, time_limit=30)


def test_app_is_json_only_with_three_queues():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert {q.name for q in app.conf.task_queues} == set(QUEUES) == {"default", "inference", "training"}


def test_beat_sends_a_heartbeat_to_every_queue():
    schedule = beat_schedule(30)
    assert {entry["options"]["queue"] for entry in schedule.values()} == set(QUEUES)


def test_beat_refreshes_the_registry_mirror():
    entry = beat_schedule(30)["registry-refresh"]
    assert entry["task"] == "mlcore.registry_refresh" and entry["options"]["queue"] == "default"
