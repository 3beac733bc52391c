"""Small request helpers shared by views."""

from __future__ import annotations

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client address as seen by Django.

    Behind a reverse proxy, configure the proxy to set REMOTE_ADDR (e.g. gunicorn
    ``--forwarded-allow-ips``); X-Forwarded-For is not trusted here because any client can
    send it.
    """
    return request.META.get("REMOTE_ADDR") or None
