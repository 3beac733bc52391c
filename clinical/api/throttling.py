"""Per-client rate limit: ``ApiClient.rate_limit_per_minute`` requests per clock minute.

A fixed-window counter in Django's default cache (see ``CACHES`` in settings: LocMem per
process in the embedded profile, Redis when ``RADVIEWER_CACHE_URL`` is set): one atomic
count per request (one round trip on Redis, radviewer.lib.cache), whatever the limit.
(DRF's ``SimpleRateThrottle`` keeps a timestamp per
request of the last minute and the cache pickles that list on every request: at a few
hundred polls a second that is thousands of entries each way.) A burst across a minute
boundary can reach twice the limit, the usual price of a fixed window. Over the limit ->
429 with ``Retry-After`` (seconds to the next minute).
"""

from __future__ import annotations

import math
import time

from rest_framework.throttling import BaseThrottle

from clinical.models import ApiClient
from radviewer.lib.cache import window_count

WINDOW_S = 60


class ApiClientRateThrottle(BaseThrottle):
    timer = staticmethod(time.time)

    def allow_request(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True
        now = self.timer()
        window = int(now // WINDOW_S)
        key = f"throttle:api_client:{client.pk}:{window}"
        count = window_count(key, 2 * WINDOW_S)
        self._wait = (window + 1) * WINDOW_S - now
        return count <= max(1, client.rate_limit_per_minute)

    def wait(self) -> float:
        return max(1.0, math.ceil(self._wait))
