"""A real gunicorn process serving RadViewer for integration tests (the production server,
not Django's live server: several worker processes, so /metrics must sum them).

It runs on the test database, MLflow store and dataset store of this session, like
:class:`tests.support.worker.WorkerProcess`, and is stopped with SIGTERM afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.support.worker import REPO, test_database_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebProcess:
    def __init__(self, *, workers: int = 2, extra_env: dict | None = None):
        self.workers = workers
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = REPO / "var" / f"test-web-{os.getpid()}-{self.port}.log"

    def __enter__(self) -> WebProcess:
        from django.conf import settings

        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env.update({"DJANGO_SETTINGS_MODULE": "radviewer.settings.test", "DATABASE_URL": test_database_url(),
                    "PYTHONUNBUFFERED": "1", "RADVIEWER_TEST_MLFLOW_URI": settings.MLFLOW_TRACKING_URI,
                    "RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI, **self.extra_env})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "radviewer.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--timeout", "120", "--access-logfile", "-"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"gunicorn did not answer /healthz within 60 s:\n{self.log()}")

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
