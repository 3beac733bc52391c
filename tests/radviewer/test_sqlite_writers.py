"""The embedded SQLite backend: writers from many threads all land, queue without SQLite's
busy-handler sleeps, and never keep the writer locks after their transaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from radviewer.audit.models import AuditEvent
from radviewer.lib.sqlite import base as sqlite_backend

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"] != "radviewer.lib.sqlite",
                       reason="the embedded profile's SQLite backend (this run uses another database)"),
]


def _in_thread(fn) -> threading.Thread:
    def run():
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_concurrent_writers_all_commit_and_the_locks_are_free_afterwards():
    def write(i: int):
        for k in range(10):
            with transaction.atomic():
                AuditEvent.objects.create(action="test.write", object_id=f"{i}-{k}")

    threads = [_in_thread(lambda i=i: write(i)) for i in range(6)]
    for t in threads:
        t.join(timeout=60)
    assert AuditEvent.objects.filter(action="test.write").count() == 60
    assert sqlite_backend._thread_lock.acquire(blocking=False)  # nobody kept it
    sqlite_backend._thread_lock.release()
    assert Path(f"{connection.settings_dict['NAME']}.writers").exists()


def test_a_second_writer_waits_for_the_first_and_starts_right_after():
    held, order = threading.Event(), []

    def first():
        with transaction.atomic():
            AuditEvent.objects.create(action="test.first")
            held.set()
            time.sleep(0.3)
            order.append(("first done", time.monotonic()))

    def second():
        held.wait(10)
        start = time.monotonic()
        with transaction.atomic():
            order.append(("second in", time.monotonic()))
            AuditEvent.objects.create(action="test.second")
        order.append(("second waited", time.monotonic() - start))

    a, b = _in_thread(first), _in_thread(second)
    a.join(30)
    b.join(30)
    (label1, done), (label2, entered), (_, waited) = order
    assert (label1, label2) == ("first done", "second in")
    assert 0.2 < waited and entered - done < 0.05  # woke at once, not after a busy-handler sleep
    assert AuditEvent.objects.filter(action__startswith="test.").count() == 2


def test_a_failed_transaction_gives_the_locks_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        AuditEvent.objects.create(action="test.rolled_back")
        raise RuntimeError("boom")
    assert not AuditEvent.objects.filter(action="test.rolled_back").exists()
    assert sqlite_backend._thread_lock.acquire(blocking=False)
    sqlite_backend._thread_lock.release()
