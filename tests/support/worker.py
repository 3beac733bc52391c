"""A real Celery worker process for integration tests.

It runs ``celery -A radviewer worker`` with the test settings, pointed at the test database
(pytest-django's) and at the broker under test, and is stopped with SIGTERM afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = s["USER"] or ""
        if s.get("PASSWORD"):
            auth += f":{s['PASSWORD']}"
        host = s.get("HOST") or "127.0.0.1"
        port = s.get("PORT") or 5432
        return f"postgres://{auth + '@' if auth else ''}{host}:{port}/{s['NAME']}"
    raise RuntimeError(f"no worker URL for database vendor {connection.vendor}")


def child_process_env(extra_env: dict | None = None) -> dict[str, str]:
    """The environment of a process a test starts (worker, gunicorn): this session's database,
    MLflow store and dataset store, the test settings."""
    from django.conf import settings

    extra_env = extra_env or {}
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "DJANGO_SETTINGS_MODULE": "radviewer.settings.test",
            "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1",
            # Not MLflow's own MLFLOW_TRACKING_URI: MLflow would read that by itself and
            # hide a worker that forgets to configure it (make run sets no such variable).
            "RADVIEWER_TEST_MLFLOW_URI": settings.MLFLOW_TRACKING_URI,
            "RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI,
            **{k: v for k, v in extra_env.items() if k != "MLFLOW_TRACKING_URI"}}


class WorkerProcess:
    def __init__(self, *, queues: str, broker_url: str | None = None, extra_env: dict | None = None,
                 beat: bool = False):
        self.queues = queues
        self.broker_url = broker_url
        self.extra_env = extra_env or {}
        self.beat = beat  # embed Celery beat (-B), so the periodic reapers run as in production
        self.proc: subprocess.Popen | None = None
        self.log_path = REPO / "var" / f"test-worker-{os.getpid()}-{queues.replace(',', '_')}.log"

    def __enter__(self) -> WorkerProcess:
        env = child_process_env(self.extra_env)
        if self.broker_url:
            env["CELERY_BROKER_URL"] = self.broker_url
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "radviewer", "worker", "-Q", self.queues,
             "-c", "1", "--pool", "solo", "-l", "INFO", "--without-gossip", "--without-mingle",
             "-n", f"test-{os.getpid()}@%h",
             *(["-B", "-s", str(self.log_path.with_suffix(".beat"))] if self.beat else [])],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_for_log("ready.", timeout=60)
        return self

    def wait_for_log(self, needle: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker did not log {needle!r} within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")
