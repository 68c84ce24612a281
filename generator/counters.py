"""A per-user change counter in the cache, for data derived from a user's whole history.

Bumped whenever one of the user's generations is created, changes status or is deleted
(Generation.claim / Generation._transition / post_save / post_delete); a second, slower
counter (history_key) only when one is deleted, starred or edited. Readers keep derived
figures — the gallery's status counts, a COUNT over up to 100,000+ rows — next to the version
they were computed at, and recompute only when it moved. Bulk writes that send no signals
(bulk_create, QuerySet.update of status) are caught by the entries' time limit.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

# Upper bound on how stale a derived figure can be after a write that sent no signal.
MAX_AGE = 300


def _version_key(user_id: int) -> str:
    return f"userchanges:{user_id}"


_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis_client(backend: RedisCache):
    """The backend's Redis client, made once: Django makes a new one (on the same connection
    pool) for every call, which costs more than the SET itself."""
    client = _clients.get(backend)
    if client is None:
        client = _clients[backend] = backend._cache.get_client(None, write=True)
    return client


def bump_user(user_id: int | None) -> None:
    if user_id is None:
        return
    bump_key(_version_key(user_id))


def cached_for_user(
    user_id: int,
    name: str,
    compute: Callable[[], Any],
    max_age: Callable[[Any], int] | None = None,
    depends: Sequence[str] = (),
) -> Any:
    """compute(), or its cached value if none of the user's generations changed since.
    One cache round trip on a hit. `max_age(value)` may shorten how long a value is kept
    (seconds; 0 keeps it not at all), e.g. for values that embed expiring URLs. `depends`
    names other counters (see bump_key) the value is derived from, e.g. the model catalogue;
    they are read in the same round trip."""
    return cached(derived_key(user_id, name), [_version_key(user_id), *depends], compute, max_age)


def cached(
    key: str,
    counters: Sequence[str],
    compute: Callable[[], Any],
    max_age: Callable[[Any], int] | None = None,
) -> Any:
    """compute(), or the value cached at `key` if none of `counters` moved since it was
    computed (one round trip on a hit)."""
    found = cache.get_many([*counters, key])
    versions = []
    for counter in counters:
        version = found.get(counter)
        if version is None:
            version = time.time_ns()
            if not cache.add(counter, version, None):
                version = cache.get(counter, version)
        versions.append(version)
    version = tuple(versions)
    entry = found.get(key)
    if entry is not None and entry[0] == version:
        return entry[1]
    value = compute()
    timeout = MAX_AGE if max_age is None else min(MAX_AGE, max_age(value))
    if timeout > 0:
        cache.set(key, (version, value), timeout)
    return value


def derived_key(user_id: int, name: str) -> str:
    return f"userderived:{user_id}:{hashlib.sha256(name.encode()).hexdigest()[:24]}"


def history_key(user_id: int) -> str:
    """A second per-user counter that moves only when a row changes in a way other than a
    status change: deleted, starred, edited in the admin. Figures over settled rows (final,
    and so never changing status again) depend on it instead of on every change."""
    return f"userhistory:{user_id}"


def bump_history(user_id: int | None) -> None:
    if user_id is None:
        return
    bump_key(_version_key(user_id))
    bump_key(history_key(user_id))


def bump_key(key: str) -> None:
    """Move a counter (a user's, or a shared one that cached_for_user(depends=…) names): every
    value derived from it is computed again on its next read.

    A version only has to differ from the one a reader saw, so it is the clock, set in one
    command; nothing is read first and a missing (evicted) key needs no special case. Only two
    writers reading the very same nanosecond off their clocks could hide one change from a
    reader in between, and the entries' time limit (MAX_AGE) bounds even that.
    """
    version = time.time_ns()
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # Stored as a plain integer, which is how Django's Redis serializer writes an int.
        _redis_client(backend).set(backend.make_and_validate_key(key), version)
    else:
        backend.set(key, version, None)


@receiver(post_save, sender="generator.Generation", dispatch_uid="userchanges_save")
def _generation_saved(sender, instance, created=False, **kwargs) -> None:
    # A new row is not settled yet (see history_key); a saved existing row may have been
    # edited in any field (the admin's change form).
    if created:
        bump_user(instance.user_id)
    else:
        bump_history(instance.user_id)


@receiver(post_delete, sender="generator.Generation", dispatch_uid="userchanges_delete")
def _generation_deleted(sender, instance, **kwargs) -> None:
    bump_history(instance.user_id)
