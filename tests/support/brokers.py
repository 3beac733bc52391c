"""Brokers for fault tests: a redis-server of the test's own on its own port (started,
stopped and restarted at will), and pointing this process's Celery app at a broker."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.services import free_port, port_open, require_binary


class OwnRedis:
    """A redis-server on a free loopback port, not persisted; not running until start()."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server", hint="Debian redis-server; scripts/ci_debian_packages.sh")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Make this process's Celery app (what enqueue_on_commit sends with) use ``url``."""
    from django.conf import settings
    from kombu import pools

    from radviewer.celery import app

    def reset() -> None:
        # kombu keeps connection pools globally, keyed by connection: drop them all, or the
        # app would get a pool for the old broker (or a closed one) back.
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    # Celery prefers the CELERY_BROKER_URL environment variable (CI's second pass sets it)
    # to broker_url, but takes broker_write_url, what it sends with, from its configuration.
    keys = ("broker_write_url", "broker_transport_options")
    saved = {key: app.conf.get(key) for key in keys}
    options = settings.TEST_FILESYSTEM_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}
    app.conf.update(broker_write_url=url, broker_transport_options=options)
    reset()
    sending = app.connection_for_write()
    assert sending.transport_cls == url.split(":")[0] and (
        url.startswith("filesystem") or sending.port == int(url.split(":")[2].split("/")[0])), sending.as_uri()
    try:
        yield
    finally:
        app.conf.update(saved)
        reset()
