"""The house task decorator (DESIGN.md section 9, rule 3).

Every task acknowledges late and is re-queued when its worker dies, so a crash never loses
work; every task has soft and hard time limits; retries happen only on the named exceptions
and back off exponentially. Tasks take keyword-only primary keys and must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction

QUEUES = ("default", "inference", "training")

# Background work that must yield to what readers wait for (shadow predictions) is sent at
# this Celery priority on the same queue. Lower numbers go first, as kombu's Redis transport
# orders them (priority steps 0, 3, 6, 9; a message without one counts as 0); the embedded
# filesystem broker orders its files the same way (radviewer.lib.kombu_fs). A RabbitMQ queue
# declared without x-max-priority ignores it (first in, first out).
LOW_PRIORITY = 9

# task name -> queue, filled by house_task; read by route_task (Celery's task_routes).
_TASK_QUEUES: dict[str, str] = {}
# task name -> task, filled by house_task; read by enqueue_on_commit for tasks sent by name.
_TASKS: dict[str, Any] = {}


def route_task(name: str, args, kwargs, options, task=None, **_: Any) -> dict[str, str]:
    """Celery router: each house task goes to the queue it was declared with."""
    return {"queue": _TASK_QUEUES.get(name, "default")}


def house_task(
    *,
    queue: str = "default",
    soft_time_limit: int = 60,
    time_limit: int | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    max_retries: int = 3,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; accepted: {', '.join(QUEUES)}")
    hard = time_limit if time_limit is not None else soft_time_limit + 30
    if hard <= soft_time_limit:
        raise ValueError("time_limit must exceed soft_time_limit so the task can clean up")
    if hard > settings.TASK_HARD_TIME_LIMIT_MAX_S:
        # The Redis visibility timeout is derived from this maximum: a longer task would be
        # handed to a second worker while the first still runs it.
        raise ValueError(f"time_limit {hard} s exceeds TASK_HARD_TIME_LIMIT_MAX_S "
                         f"({settings.TASK_HARD_TIME_LIMIT_MAX_S} s); raise that setting with it")

    def decorate(fn: Callable[..., Any]) -> Any:
        options: dict[str, Any] = {
            "acks_late": True,
            "reject_on_worker_lost": True,
            "soft_time_limit": soft_time_limit,
            "time_limit": hard,
            "serializer": "json",
            "ignore_result": True,
        }
        if name:
            options["name"] = name
        if retry_on:
            options.update(
                autoretry_for=retry_on,
                max_retries=max_retries,
                retry_backoff=True,
                retry_backoff_max=600,
                retry_jitter=True,
            )
        task = shared_task(**options)(fn)
        _TASK_QUEUES[task.name] = queue
        _TASKS[task.name] = task
        return task

    return decorate


def enqueue_on_commit(task: Any, /, *, swept: bool = False, low_priority: bool = False,
                      countdown: float | None = None, **kwargs: Any) -> None:
    """Send ``task`` (a task, or the name it was declared with) with keyword arguments once
    the current transaction commits.

    A task sent before commit can run before its row is visible to the worker, or for a
    row that is then rolled back. Services send tasks by name: tasks are adapters that call
    services, so a service importing its task would point the layers the wrong way.

    ``swept=True`` is for tasks whose rows a sweeper re-sends when their message never
    arrived (predictions): a broker that refuses the message after the commit is then
    logged, not raised, so the request that committed the row still answers as accepted.

    ``low_priority=True`` sends it at ``LOW_PRIORITY``: a worker takes any waiting message
    of normal priority on the same queue first.

    ``countdown`` (seconds) delays the run, e.g. until an undo window has passed.
    """
    options: dict[str, Any] = {"priority": LOW_PRIORITY} if low_priority else {}
    if countdown:
        options["countdown"] = countdown
    transaction.on_commit(lambda: task_by_name(task).apply_async(kwargs=kwargs, **options), robust=swept)


def task_by_name(task: Any) -> Any:
    """The task itself for a task, the declared task for a name (``KeyError`` if none is)."""
    if not isinstance(task, str):
        return task
    if task not in _TASKS:
        raise KeyError(f"no task named {task!r} is declared; is its app's tasks module imported?")
    return _TASKS[task]
