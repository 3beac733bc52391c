"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from radviewer.ops.checks import check_broker, check_database, check_storage, worker_heartbeats


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing else, so a database outage does not
    make an orchestrator restart healthy web processes."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": check_database(),
        "broker": check_broker(),
        "storage": check_storage(),
    }
    ok = all(c.ok for c in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "profile": settings.PROFILE,
        "checks": {name: c.as_dict() for name, c in checks.items()},
        # Informational: a missing worker does not make the web tier unready.
        "workers": worker_heartbeats() if checks["database"].ok else {},
    }
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    addr = request.META.get("REMOTE_ADDR", "")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return HttpResponseForbidden("metrics: unknown client address")
    if not any(ip in net for net in settings.METRICS_ALLOWED_NETWORKS):
        return HttpResponseForbidden(
            "metrics are served only to RADVIEWER_METRICS_ALLOWED_CIDRS"
        )
    return HttpResponse(metrics_page(), content_type=CONTENT_TYPE_LATEST)


def metrics_page() -> bytes:
    """Every process's event metrics, then the database and broker metrics (read here only).

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, docs/operations.md) the first part sums
    the files of every gunicorn and Celery process on this host; otherwise it is this process's.
    """
    from radviewer.ops.collectors import database_collector

    if settings.PROMETHEUS_MULTIPROC_DIR:
        processes = CollectorRegistry()
        MultiProcessCollector(processes, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        processes = REGISTRY
    read_here = CollectorRegistry(auto_describe=False)
    read_here.register(database_collector)
    return generate_latest(processes) + generate_latest(read_here)
