"""Tell whoever waits that a generation changed (issue #17): Redis pub/sub, polling as fallback.

Every change a generation's row goes through (generator/models/generation.py) publishes one
small message, once the change is committed, on two channels:
- `easel:gen:<pk>`: the API's synchronous requests waiting for it (generator/waiting.py);
- `easel:user:<user id>`: the owner's open pages, whose live cards move by server-sent events
  (generator/events.py).

A message says only "look again" (`{"pk": …}`): every reader then reads the row itself, so a
lost message (Redis restarted, a reader that subscribed a moment late) costs latency, never a
wrong answer, and every reader also looks again on a timer. Without Redis (the embedded
default) nothing is published and readers poll the database.

`listen` is the reader's side, for async code: an inbox that yields messages as they come or
None when `timeout` passes. It holds one Redis connection (and no thread, no worker process)
while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterable

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

# How often a reader without Redis (or while Redis is down) looks at the database.
POLL_SECONDS = 0.25
TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 2.0}


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def gen_channel(pk: int) -> str:
    return f"easel:gen:{pk}"


def user_channel(user_id: int) -> str:
    return f"easel:user:{user_id}"


@functools.cache
def _client(url: str) -> redis.Redis:
    """One client (and connection pool) per process, made on first use."""
    return redis.Redis.from_url(url, **TIMEOUTS)


def changed(pk: int, user_id: int | None) -> None:
    """Generation `pk` changed: tell its waiters once the change is committed (at once in
    autocommit). Never raises: Redis down means the readers find out by looking again."""
    if not enabled():
        return
    transaction.on_commit(lambda: _publish(pk, user_id))


def _publish(pk: int, user_id: int | None) -> None:
    payload = json.dumps({"pk": pk})
    try:
        pipe = _client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.publish(gen_channel(pk), payload)
        if user_id is not None:
            pipe.publish(user_channel(user_id), payload)
        pipe.execute()
    except redis.RedisError:
        logger.warning("Could not publish the change of generation %s", pk, exc_info=True)


class Inbox:
    """Messages on some channels; `next(timeout)` returns one message's pk or None."""

    def __init__(self, pubsub: redis.asyncio.client.PubSub | None):
        self._pubsub = pubsub

    @property
    def live(self) -> bool:
        """Whether messages arrive (else the caller is polling)."""
        return self._pubsub is not None

    @property
    def recheck(self) -> float:
        """How long to wait for a message before looking at the row anyway."""
        # EASEL_LIVE_RECHECK_SECONDS: long enough that a waiting request costs next to nothing,
        # short enough that a lost message is only a delay.
        return float(settings.EASEL_LIVE_RECHECK_SECONDS) if self.live else POLL_SECONDS

    async def next(self, timeout: float) -> int | None:
        timeout = max(0.0, timeout)
        if self._pubsub is None:
            await asyncio.sleep(min(timeout, POLL_SECONDS))
            return None
        try:
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=timeout
            )
        except (redis.RedisError, OSError):
            logger.warning("Lost the change notifications; polling instead", exc_info=True)
            self._pubsub = None  # the rest of this wait polls
            return None
        if message is None:
            return None
        try:
            return int(json.loads(message["data"])["pk"])
        except (ValueError, KeyError, TypeError):
            return None


@contextlib.asynccontextmanager
async def listen(channels: Iterable[str]) -> AsyncIterator[Inbox]:
    """Subscribe to `channels` for the block; without Redis, or when it does not answer, the
    inbox only paces the caller's polling."""
    if not enabled():
        yield Inbox(None)
        return
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, **TIMEOUTS)
    pubsub = client.pubsub()
    try:
        try:
            await pubsub.subscribe(*channels)
        except (redis.RedisError, OSError):
            logger.warning("Redis did not take the subscription; polling instead")
            yield Inbox(None)
        else:
            yield Inbox(pubsub)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        with contextlib.suppress(Exception):
            await client.aclose()
