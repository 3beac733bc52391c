"""Failed-attempt counters with a lockout, in Django's default cache.

Used by the login form (per user name and per client address) and by API token
authentication (per client address). A key collects failures in a fixed window that starts
at its first failure; the failure that reaches the limit locks the key for the lockout time,
and while it is locked every attempt is refused, the right password or token included, so
guessing gains nothing. With the LocMem cache (embedded profile) counters are per process;
``RADVIEWER_CACHE_URL`` (Redis) shares them between gunicorn workers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache

timer = time.time  # module-level so a test may read the same clock


@dataclass(frozen=True)
class FailureLimit:
    """``limit`` failures within ``window_s`` seconds lock the key for ``lockout_s`` seconds."""

    scope: str
    limit: int
    window_s: int
    lockout_s: int

    def _counter_key(self, key: str) -> str:
        return f"failures:{self.scope}:count:{key}"

    def _lock_key(self, key: str) -> str:
        return f"failures:{self.scope}:lock:{key}"

    def locked_for(self, key: str) -> int:
        """Whole seconds until ``key`` is unlocked; 0 when it is not locked."""
        until = cache.get(self._lock_key(key))
        if until is None:
            return 0
        remaining = until - timer()
        return math.ceil(remaining) if remaining > 0 else 0

    def record_failure(self, key: str) -> bool:
        """Count a failure; True when this one reached the limit and locked the key."""
        counter = self._counter_key(key)
        cache.add(counter, 0, timeout=self.window_s)
        try:
            count = cache.incr(counter)
        except ValueError:  # expired or evicted between add and incr: this failure alone
            cache.set(counter, 1, timeout=self.window_s)
            count = 1
        if count < max(1, self.limit):
            return False
        cache.set(self._lock_key(key), timer() + self.lockout_s, timeout=self.lockout_s + 1)
        cache.delete(counter)  # the lock takes over; a fresh window starts after it
        return True

    def reset(self, key: str) -> None:
        cache.delete(self._counter_key(key))
