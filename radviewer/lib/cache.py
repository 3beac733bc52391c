"""The Redis cache backend RadViewer configures (``RADVIEWER_CACHE_URL``), and a windowed counter.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` object for every cache call (its
constructor fills a dictionary of ~80 response callbacks), and its ``incr`` is two round trips
(``EXISTS`` then ``INCRBY``). The API's rate limit and the audit's read coalescing touch the
cache on every request, so on the service profile a status poll paid for six client objects
and six round trips. Here the ``redis.Redis`` object (thread-safe: it checks connections out
of the shared pool per command) is made once per pool, and :func:`window_count` counts in one
round trip (``INCR`` and ``EXPIRE ... NX`` pipelined).
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(DjangoRedisCache):
    """Django's Redis cache with one ``redis.Redis`` per connection pool."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient

    def window_count(self, key: str, timeout: int) -> int:
        """Add 1 to ``key`` (created at 0 with ``timeout`` seconds to live) and return it."""
        redis_key = self.make_and_validate_key(key)
        client = self._cache.get_client(redis_key, write=True)
        pipe = client.pipeline(transaction=False)
        pipe.incr(redis_key)
        pipe.expire(redis_key, timeout, nx=True)
        count, _ = pipe.execute()
        return int(count)


def window_count(key: str, timeout: int, cache: Any = default_cache) -> int:
    """Count one more event under ``key`` (a fixed window's counter that lives ``timeout``
    seconds from its first event) and return the count; one round trip on Redis."""
    if isinstance(cache, RedisCache):
        return cache.window_count(key, timeout)
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr: count this event alone
        cache.set(key, 1, timeout=timeout)
        return 1
