"""Per-client rate limit: ``ApiClient.rate_limit_per_minute`` requests in any 60-second window.

Counters live in Django's default cache (see ``CACHES`` in settings: LocMem per process in the
embedded profile, Redis when ``RADVIEWER_CACHE_URL`` is set). Over the limit -> 429 with
``Retry-After``.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from clinical.models import ApiClient


class ApiClientRateThrottle(SimpleRateThrottle):
    scope = "api_client"

    def __init__(self) -> None:
        # The rate comes from the client row, not from DEFAULT_THROTTLE_RATES.
        self.rate = None
        self.num_requests, self.duration = 0, 60

    def get_cache_key(self, request, view) -> str | None:
        client = request.auth
        return f"throttle:api_client:{client.pk}" if isinstance(client, ApiClient) else None

    def allow_request(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True
        self.num_requests, self.duration = max(1, client.rate_limit_per_minute), 60
        self.rate = f"{self.num_requests}/min"  # the base class skips throttling when rate is None
        return super().allow_request(request, view)
