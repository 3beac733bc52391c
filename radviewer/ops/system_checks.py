"""Django system checks (``manage.py check --deploy``) for a production installation."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def shared_cache_check(app_configs, **kwargs) -> list[Warning]:
    """Sign-in lockouts, failed-token lockouts, API rate limits and the coalescing of repeated
    read audits count in Django's cache. Without ``RADVIEWER_CACHE_URL`` that is each web
    process's own memory: with N gunicorn workers (two per core by default) a password guesser
    gets N times the allowed tries."""
    if getattr(settings, "PROFILE", "") != "production" or settings.CACHE_URL:
        return []
    return [Warning(
        "RADVIEWER_CACHE_URL is not set: sign-in and API-token lockouts and API rate limits count "
        "per web process, so each gunicorn worker allows the full limit on its own",
        hint="point it at Redis, e.g. RADVIEWER_CACHE_URL=redis://redis:6379/1 (deploy/compose.yaml sets it)",
        id="radviewer.W001",
    )]
