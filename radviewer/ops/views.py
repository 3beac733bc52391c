"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView

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
    return ExportToDjangoView(request)
