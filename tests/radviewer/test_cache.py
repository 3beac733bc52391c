"""radviewer.lib.cache: the Redis backend reuses its client, and window_count counts in a
fixed window on Redis (one round trip) and on any other cache (add + incr)."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache

from radviewer.lib.cache import RedisCache, window_count
from tests.support.services import require_redis


@pytest.fixture
def redis_cache():
    cache = RedisCache(require_redis(), {})
    yield cache
    cache.clear()


def test_window_count_on_redis_counts_and_expires(redis_cache):
    key = f"t:{uuid.uuid4().hex}"
    assert [window_count(key, 60, cache=redis_cache) for _ in range(3)] == [1, 2, 3]
    client = redis_cache._cache.get_client(write=True)
    ttl = client.ttl(redis_cache.make_and_validate_key(key))
    assert 0 < ttl <= 60
    # Later counts leave the window's end where the first one put it (EXPIRE ... NX).
    client.expire(redis_cache.make_and_validate_key(key), 5)
    window_count(key, 60, cache=redis_cache)
    assert client.ttl(redis_cache.make_and_validate_key(key)) <= 5


def test_redis_backend_reuses_one_client_per_pool(redis_cache):
    first = redis_cache._cache.get_client(write=True)
    assert redis_cache._cache.get_client(write=True) is first
    redis_cache.set("k", "v")
    assert redis_cache.get("k") == "v"
    assert redis_cache.add("k", "w") is False
    assert redis_cache.add("n", 0) is True
    assert redis_cache.incr("n") == 1


def test_window_count_on_other_caches():
    cache = LocMemCache(f"t-{uuid.uuid4().hex}", {})
    assert [window_count("w", 60, cache=cache) for _ in range(3)] == [1, 2, 3]
