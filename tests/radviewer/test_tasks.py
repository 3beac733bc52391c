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


def test_no_task_may_outlive_the_redis_visibility_timeout():
    from django.conf import settings

    import clinical.tasks  # noqa: F401 - declares the tasks checked below
    import mlcore.tasks  # noqa: F401

    with pytest.raises(ValueError, match="TASK_HARD_TIME_LIMIT_MAX_S"):
        house_task(soft_time_limit=settings.TASK_HARD_TIME_LIMIT_MAX_S)
    hard_limits = [t.time_limit for name, t in app.tasks.items() if not name.startswith("celery.")]
    assert max(hard_limits) == settings.TASK_HARD_TIME_LIMIT_MAX_S  # training's 6 h + 30 s


def test_redis_visibility_timeout_covers_the_longest_hard_limit(monkeypatch):
    import importlib

    import radviewer.settings.base as base

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    try:
        reloaded = importlib.reload(base)
        timeout = reloaded.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        assert timeout >= reloaded.TASK_HARD_TIME_LIMIT_MAX_S + 60
    finally:
        monkeypatch.undo()
        importlib.reload(base)


def test_beat_runs_the_prediction_sweeper():
    entry = beat_schedule(30)["predictions-recover"]
    assert entry["task"] == "clinical.predictions_recover" and entry["options"]["queue"] == "default"
