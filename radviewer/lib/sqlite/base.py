"""SQLite backend for the embedded profile: writers queue on locks that wake them at once.

With ``transaction_mode = IMMEDIATE`` every ``atomic()`` block takes SQLite's write lock at
``BEGIN``. When the lock is taken, SQLite's busy handler polls it, sleeping 1, 2, 5, 10, 15,
20, 25, 25, 25, 50, 50, 100 ms between tries: a writer that comes back just after the lock
was released and taken again can wait hundreds of milliseconds behind transactions of a few
milliseconds each. With eight gunicorn threads storing STOW-RS instances that was the whole
tail of the acknowledgement latency (``BEGIN IMMEDIATE`` waits of 60 ms to 1.3 s, logged).

So before ``BEGIN`` a writer takes a process-wide thread lock (threads of one process wake
the moment the previous writer is done), then an ``flock`` on ``<database>.writers`` shared
by every process on the database (web workers, Celery workers), tried every half
millisecond; both are given back as soon as the transaction ends, before on-commit hooks
run. Each wait is bounded by the database timeout, after which the transaction proceeds
anyway and SQLite's own locking decides: the locks can delay a writer, never deadlock it.
PostgreSQL, the production database, needs none of this.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

from django.db.backends.sqlite3 import base

_thread_lock = threading.RLock()
_lock_files: dict[str, int] = {}
_POLL_S = 0.0005


def _lock_file(db_name: str) -> int | None:
    if not db_name or db_name == ":memory:" or db_name.startswith("file:"):
        return None
    fd = _lock_files.get(db_name)
    if fd is None:
        fd = os.open(f"{db_name}.writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _lock_files[db_name] = fd
    return fd


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_thread_lock = False
    _held_file: int | None = None

    def _start_transaction_under_autocommit(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + timeout
        self._holds_thread_lock = _thread_lock.acquire(timeout=timeout)
        try:
            if self._holds_thread_lock:
                self._take_file_lock(deadline)
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer_locks()
            raise

    def _take_file_lock(self, deadline: float) -> None:
        fd = _lock_file(str(self.settings_dict["NAME"]))
        if fd is None:
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._held_file = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # proceed; SQLite's busy handler decides
                time.sleep(_POLL_S)

    def _release_writer_locks(self) -> None:
        if self._held_file is not None:
            fcntl.flock(self._held_file, fcntl.LOCK_UN)
            self._held_file = None
        if self._holds_thread_lock:
            self._holds_thread_lock = False
            _thread_lock.release()

    def _set_autocommit(self, autocommit: bool) -> None:
        super()._set_autocommit(autocommit)
        if autocommit:  # the transaction is over (committed or rolled back)
            self._release_writer_locks()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release_writer_locks()
