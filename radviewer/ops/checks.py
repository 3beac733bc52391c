"""Readiness checks: each returns (ok, detail) and never raises."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from radviewer.celery import app
from radviewer.ops.models import WorkerHeartbeat


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    ms: float

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail, "ms": round(self.ms, 1)}


def _timed(fn) -> CheckResult:
    start = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception as exc:  # a readiness probe reports, it does not crash
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return CheckResult(ok, detail, (time.perf_counter() - start) * 1000)


def check_database() -> CheckResult:
    def run():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, f"{connection.vendor} reachable"

    return _timed(run)


def check_broker() -> CheckResult:
    def run():
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            driver = conn.transport.driver_type
        return True, f"{driver} broker reachable"

    return _timed(run)


def check_storage() -> CheckResult:
    def run():
        name = default_storage.save(f"healthcheck/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
        try:
            with default_storage.open(name) as fh:
                if fh.read() != b"ok":
                    return False, "storage returned different bytes than written"
        finally:
            default_storage.delete(name)
        return True, f"{type(default_storage).__name__} read/write ok"

    return _timed(run)


def worker_heartbeats() -> dict:
    now = timezone.now()
    stale_after = settings.CELERY_WORKER_HEARTBEAT_SECONDS * 3
    out = {}
    try:
        for hb in WorkerHeartbeat.objects.all():
            age = (now - hb.seen_at).total_seconds()
            out[hb.queue] = {"hostname": hb.hostname, "age_s": round(age, 1), "stale": age > stale_after}
    except Exception as exc:
        out["error"] = str(exc)
    return out
