"""Every cache counter, key and lifetime Easel uses (the table below), and the two readers of
values derived from a counter (`cached_for_user`, `cached`).

How it works, in three sentences. A counter is a key holding a version (a clock reading),
moved ("bumped") whenever the data behind it changes. A derived value — a gallery page, the
per-status counts, the model directory — is stored next to the versions of the counters it
depends on, and is computed again on the first read after one of them moved. Every value also
has a lifetime, which bounds how stale it can be after a write that bumped nothing (bulk_create,
QuerySet.update: they send no signals).

The one rule for bumps: only `Generation`'s transition methods (generator/models.py) and the
receivers in generator/signals.py call bump_*. A view, a task or a form never does; code that
writes a Generation or an AIModel without save()/delete() relies on the lifetimes below.

This module is a leaf: it imports only the standard library and Django.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# THE TABLE: every counter, lifetime and versioned key. Change one here, nowhere else.
# ---------------------------------------------------------------------------------------------
#
# Counters (kept without expiry; an evicted one simply reads as "moved"):
#   constant = key template  # bumped when (by whom)                           read by
USER_COUNTER = "userchanges:{user_id}"  # a generation of the user is created,  gallery page
#                                          changes status, is starred, deleted   (cached_for_user)
#                                          or edited (models.py, signals.py)
HISTORY_COUNTER = "userhistory:{user_id}"  # only deleted or edited: never a     settled counts
#                                             status change (signals.py)         (gallery.views)
STARS_COUNTER = "userstars:{user_id}"  # a star is set or cleared (models.py)   the starred
#                                         filter's settled counts only
MODELS_COUNTER = "gallery:models-version"  # an AIModel is saved or deleted      model directory,
#                                             (signals.py)                       gallery page
#
# Lifetimes, in seconds.
DERIVED_MAX_AGE = 300  # any value read through cached()/cached_for_user: the bound on staleness
#                        after a write that sent no signal
COMPUTE_LOCK_SECONDS = 10  # one request recomputes a derived value; the others serve the old one
CARD_MAX_AGE = 3600  # a finished card's HTML (generator.cards); its image URLs may bound it more
CARD_MIN_AGE = 30  # a card (or page) whose URLs expire sooner than this is not cached at all
ACTIVE_PAGE_MAX_AGE = 5  # a page showing a queued/running card: its script refreshes it anyway
PRESIGN_SAFETY_MARGIN = 300  # a cached presigned URL is handed out only while it has this long
#                              to live (generator.image_urls)
MODEL_DIRECTORY_MAX_AGE = 300  # every AIModel by slug (gallery.forms.model_directory)
PROVIDER_REMAINING_TTL = 60  # what a provider says is left today (generator.views): the prompt
#                              page must not ask the provider on every view
#
# Keys of cached values. A key carries a version only where the cached value's *shape* is not
# derived automatically: bump the "vN" when you change what is stored under it.
CARD_KEY = "card:v2"  # + template hash, row id, digest of cards.FIELDS' values: (html, expires)
PRESIGN_KEY = "presign:v2"  # + lifetime, digest of endpoint|bucket|object key: (url, until)
DIRECTORY_KEY = "gallery:model-directory:v1"  # (versions, {slug: AIModel with id/slug/name})
PAGE_KEY = "gallery-page"  # + shape_version(GalleryPage) + template hash + tz + query: no hand
#                            version — the shape's digest changes with the TypedDict
PROVIDER_REMAINING_KEY = "provider-remaining"  # + provider, remote id, user tag: (int | None,)
WAITING_KEY = "fairq-waiting"  # + user id: the fair queue holds some of theirs back (tasks.py)
PENDING_CHECK_KEY = "pending-check"  # + generation id: a webhook's check is queued, not yet run
PENDING_CHECK_TTL = 30  # (generator.webhooks): more webhooks for the job meanwhile add nothing
# ---------------------------------------------------------------------------------------------


def user_counter(user_id: int) -> str:
    return USER_COUNTER.format(user_id=user_id)


def history_key(user_id: int) -> str:
    """The user's second counter, which moves only when a row changes in a way other than a
    status change: deleted or edited in the admin. Figures over settled rows (final, and so
    never changing status again) depend on it instead of on every change."""
    return HISTORY_COUNTER.format(user_id=user_id)


def stars_key(user_id: int) -> str:
    """Moves with a star: only figures that depend on which rows are starred (the starred
    filter's counts) read it, so a star costs the other filters nothing."""
    return STARS_COUNTER.format(user_id=user_id)


def shape_version(*shapes: type) -> str:
    """A digest of these TypedDicts' field names and types: a cached value's key carries it,
    so a release that changes what is cached never reads entries of the previous one."""
    described = [(s.__qualname__, sorted(map(str, s.__annotations__.items()))) for s in shapes]
    return hashlib.sha256(repr(described).encode()).hexdigest()[:8]


def bump_user(user_id: int | None) -> None:
    if user_id is None:
        return
    bump_key(user_counter(user_id))


def bump_history(user_id: int | None) -> None:
    if user_id is None:
        return
    bump_key(user_counter(user_id))
    bump_key(history_key(user_id))


def bump_stars(user_id: int | None) -> None:
    if user_id is None:
        return
    bump_key(user_counter(user_id))
    bump_key(stars_key(user_id))


def bump_key(key: str) -> None:
    """Move a counter: every value derived from it is computed again on its next read.

    A version only has to differ from the one a reader saw, so it is the clock, set in one
    command; nothing is read first and a missing (evicted) key needs no special case. Only two
    writers reading the very same nanosecond off their clocks could hide one change from a
    reader in between, and the entries' lifetime (DERIVED_MAX_AGE) bounds even that.
    """
    version = time.time_ns()
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # A plain integer is what Django's RedisSerializer writes for an int (and reads back
        # as one). Measured on the CI box (timeit, 5,000 SETs): cache.set 229 µs, this 75 µs —
        # Django makes a new redis.Redis per call — and the pipeline bumps on its hot path.
        try:
            _redis_client(_write_location()).set(backend.make_and_validate_key(key), version)
        except redis.exceptions.RedisError:  # stopped: nothing is cached meanwhile either
            logger.warning("Cache unavailable: counter %s not moved.", key)
    else:
        backend.set(key, version, None)


def _write_location() -> tuple[str, tuple]:
    config = settings.CACHES["default"]
    location = config["LOCATION"]
    if isinstance(location, str):
        location = location.replace(";", ",").split(",")
    # Django's RedisCache writes to the first server; its OPTIONS other than these three are
    # connection-pool arguments, as they are here.
    options = {
        k: v
        for k, v in config.get("OPTIONS", {}).items()
        if k not in ("pool_class", "parser_class", "serializer")
    }
    return location[0], tuple(sorted(options.items()))


@functools.cache
def _redis_client(location: tuple[str, tuple]):
    """One client (and connection pool) per process and server, made on first use."""
    url, options = location
    return redis.Redis.from_url(url, **dict(options))


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
    names other counters (see bump_key) the value is derived from, e.g. MODELS_COUNTER;
    they are read in the same round trip."""
    return cached(derived_key(user_id, name), [user_counter(user_id), *depends], compute, max_age)


def cached(
    key: str,
    counters: Sequence[str],
    compute: Callable[[], Any],
    max_age: Callable[[Any], int] | None = None,
) -> Any:
    """compute(), or the value cached at `key` if none of `counters` moved since it was
    computed (one round trip on a hit). Kept DERIVED_MAX_AGE at most."""
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
    # One recount at a time however many requests want it: while another request computes,
    # the others serve the value it replaces (stale by that one change, for that long).
    computing = f"{key}:computing"
    if not cache.add(computing, 1, COMPUTE_LOCK_SECONDS) and entry is not None:
        return entry[1]
    try:
        value = compute()
        timeout = DERIVED_MAX_AGE if max_age is None else min(DERIVED_MAX_AGE, max_age(value))
        if timeout > 0:
            cache.set(key, (version, value), timeout)
    finally:
        cache.delete(computing)
    return value


def derived_key(user_id: int, name: str) -> str:
    return f"userderived:{user_id}:{hashlib.sha256(name.encode()).hexdigest()[:24]}"


def mark_waiting(user_id: int, waiting: bool = True) -> None:
    """Note (or clear) that the fair queue holds some of the user's generations back, so a
    generation that ends looks for them only then: a cache read instead of a query on every
    generation. Lost (cache flushed or down), the reaper still finds them."""
    key = f"{WAITING_KEY}:{user_id}"
    cache.set(key, 1, None) if waiting else cache.delete(key)


def has_waiting(user_id: int) -> bool:
    key = f"{WAITING_KEY}:{user_id}"
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return bool(cache.get(key))
    try:  # on every generation's path: the direct client, as bump_key (75 µs, not 229 µs)
        return bool(_redis_client(_write_location()).exists(backend.make_and_validate_key(key)))
    except redis.exceptions.RedisError:
        return False  # the reaper finds what waits
