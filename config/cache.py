"""Django's Redis cache, made to degrade instead of fail: with Redis stopped every read is a
miss and every write is dropped, so pages keep working (slower: nothing is cached) instead of
answering 500. Easel's cache holds only derived values (rendered cards, counts, presigned URLs,
rate-limit windows) that can be computed again; sessions live in the database.

A dead server is noticed within the socket timeouts set in config/settings.py (OPTIONS), and a
warning is logged at most once a minute per process.
"""

from __future__ import annotations

import functools
import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
WARN_EVERY = 60.0
_last_warning = [0.0]


def _warn(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY:
        _last_warning[0] = now
        logger.warning("Cache unavailable (%s: %s); serving without it.", operation, exc)


def _degrade(fallback):
    """Wrap a cache method: a Redis error becomes `fallback` (a value, or a callable of the
    call's arguments)."""

    def wrap(method):
        @functools.wraps(method)
        def safe(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except RedisError as exc:
                _warn(method.__name__, exc)
                return fallback(*args, **kwargs) if callable(fallback) else fallback

        return safe

    return wrap


def _default(key, default=None, version=None):
    return default


def _added(key, *args, **kwargs) -> bool:
    """add() while Redis is down: refused (False), so work that add() guards — a queued check,
    a refresh — is not multiplied; except allauth's rate-limit lock (`allauth:rl:…:lock`),
    which is granted: refusing it answers every sign-in with a 429 for the whole outage
    (seen in tests/test_multinode.py). The limit itself then counts nothing: fail open."""
    return str(key).startswith("allauth:rl:") and str(key).endswith(":lock")


class ResilientRedisCache(RedisCache):
    get = _degrade(_default)(RedisCache.get)
    get_many = _degrade({})(RedisCache.get_many)
    has_key = _degrade(False)(RedisCache.has_key)
    set = _degrade(None)(RedisCache.set)
    set_many = _degrade([])(RedisCache.set_many)
    add = _degrade(_added)(RedisCache.add)
    touch = _degrade(False)(RedisCache.touch)
    delete = _degrade(False)(RedisCache.delete)
    delete_many = _degrade(None)(RedisCache.delete_many)
    clear = _degrade(None)(RedisCache.clear)

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except RedisError as exc:
            _warn("incr", exc)
            raise ValueError(f"Key {key!r} not found (the cache is unavailable).") from None
