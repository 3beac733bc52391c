"""A real gunicorn serving RadViewer (``radviewer.wsgi``, as ``make run`` does) on the test database.

pytest-django's ``live_server`` is wsgiref, which cannot read chunked request bodies; a PACS
streaming to RadViewer has to be tested against the server that production runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.services import free_port
from tests.support.worker import REPO, child_process_env, wait_until


class GunicornServer:
    def __init__(self, *, extra_env: dict[str, str] | None = None, workers: int = 1, threads: int = 2) -> None:
        self.extra_env = extra_env or {}
        self.workers, self.threads = workers, threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = REPO / "var" / f"test-gunicorn-{os.getpid()}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> GunicornServer:
        env = child_process_env(self.extra_env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "radviewer.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--threads", str(self.threads), "--timeout", "120",
             "--access-logfile", "-"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._up, timeout=60, what="gunicorn /healthz")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log()[-3000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code < 500
        except requests.RequestException:  # not listening yet, or too busy to answer in time
            return False

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
