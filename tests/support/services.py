"""Real services for tests: reachable, or the test fails under CI and skips on a laptop.

CI (CI=true) has PostgreSQL, Redis, chromium and Orthanc; a missing one there is a broken
environment, and a skipped test would hide it.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    if condition:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it (see .ci/run)")
    pytest.skip(f"{message} (required under CI=true)")


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_redis() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    require(port_open("127.0.0.1", 6379), "Redis at 127.0.0.1:6379")
    return url


def require_rabbitmq() -> str:
    """RabbitMQ (CI's machines run it at 127.0.0.1:5672, guest/guest)."""
    url = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    require(port_open("127.0.0.1", 5672), "RabbitMQ at 127.0.0.1:5672")
    return url


def require_binary(name: str, *, hint: str) -> str:
    path = shutil.which(name) or (name if os.path.exists(name) else None)
    require(path is not None, f"{name} ({hint})")
    return path  # type: ignore[return-value]
