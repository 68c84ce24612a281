"""Tell whoever waits that a generation changed (issue #17): Redis pub/sub, polling as fallback.

Every change a generation's row goes through (generator/models/generation.py) publishes one
small message, once the change is committed, on two channels:
- `easel:gen:<pk>`: the API's synchronous requests waiting for it (generator/waiting.py);
- `easel:user:<user id>`: the owner's open pages, whose live cards move by server-sent events
  (generator/events.py).

A message says which row changed and the status it committed (`{"pk": …, "status": …}`);
a reader that needs more reads the row itself, so a lost message (Redis restarted, a publish
that failed) costs latency, never a wrong answer, and every reader also looks again on a timer.
Without Redis (the embedded default) nothing is published and readers poll the database.

`listen` is the reader's side, for async code: an inbox that yields changes as they come or
None when `timeout` passes. All the readers of one event loop (a uvicorn worker process) share
one subscriber connection (`_Hub`); when it breaks, each of them polls for the rest of its wait
and the next reader opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.utils import str_if_bytes

logger = logging.getLogger(__name__)

# How often a reader without Redis (or while Redis is down) looks at the database.
POLL_SECONDS = 0.25
TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 2.0}
HUB_CLIENT_NAME = "easel-notify"  # in Redis's CLIENT LIST: one per web process with waiters


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def gen_channel(pk: int) -> str:
    return f"easel:gen:{pk}"


def user_channel(user_id: int) -> str:
    return f"easel:user:{user_id}"


@dataclass(frozen=True)
class Change:
    pk: int
    status: str  # the status the change committed


@functools.cache
def _client(url: str) -> redis.Redis:
    """One client (and connection pool) per process, made on first use."""
    return redis.Redis.from_url(url, **TIMEOUTS)


def changed(pk: int, user_id: int | None, status: str) -> None:
    """Generation `pk` changed to `status`: tell its waiters once the change is committed (at
    once in autocommit). Never raises: Redis down means the readers find out by looking again."""
    if not enabled():
        return
    transaction.on_commit(lambda: _publish(pk, user_id, status))


def _publish(pk: int, user_id: int | None, status: str) -> None:
    payload = json.dumps({"pk": pk, "status": status})
    try:
        pipe = _client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.publish(gen_channel(pk), payload)
        if user_id is not None:
            pipe.publish(user_channel(user_id), payload)
        pipe.execute()
    except redis.RedisError:
        logger.warning("Could not publish the change of generation %s", pk, exc_info=True)


def _parse(data) -> Change | None:
    try:
        message = json.loads(data)
        return Change(int(message["pk"]), str(message.get("status", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


_LOST = object()  # put in every inbox when the hub's connection breaks


class Inbox:
    """Changes on some channels; `next(timeout)` returns one Change or None."""

    def __init__(self, channels: Iterable[str] = ()):
        self.channels = tuple(channels)
        self._queue: asyncio.Queue | None = asyncio.Queue() if self.channels else None

    @property
    def live(self) -> bool:
        """Whether messages arrive (else the caller is polling)."""
        return self._queue is not None

    @property
    def recheck(self) -> float:
        """How long to wait for a message before looking at the row anyway."""
        # EASEL_LIVE_RECHECK_SECONDS: long enough that a waiting request costs next to nothing,
        # short enough that a lost message is only a delay.
        return float(settings.EASEL_LIVE_RECHECK_SECONDS) if self.live else POLL_SECONDS

    def poll(self) -> None:
        """No more messages for this inbox: the rest of its wait polls."""
        self._queue = None

    def put(self, item) -> None:
        if self._queue is not None:
            self._queue.put_nowait(item)

    async def next(self, timeout: float) -> Change | None:
        timeout = max(0.0, timeout)
        if self._queue is None:
            await asyncio.sleep(min(timeout, POLL_SECONDS))
            return None
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _LOST:
            logger.warning("Lost the change notifications; polling instead")
            self.poll()
            return None
        return item


class _Hub:
    """One subscriber connection shared by every inbox of one event loop.

    A connection per waiting request (the first design) cost a fifth of the web processes' CPU
    with 200 requests waiting (py-spy, bench/live_wait.py): a connect and handshake each, where
    a shared one costs a SUBSCRIBE and an UNSUBSCRIBE. A reader task routes each message to the
    inboxes of its channel; a subscription counts once Redis confirmed it, so a change between
    it and the reader's first look at the row is a message, not lost. The hub closes when its
    last inbox leaves (under a WSGI server each request has an event loop of its own).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        # No silent reconnect: messages published meanwhile would be lost unnoticed. A broken
        # connection breaks the hub instead, and its inboxes poll.
        self.client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, retry=Retry(NoBackoff(), 0), client_name=HUB_CLIENT_NAME,
            **TIMEOUTS,
        )  # fmt: skip
        self.pubsub = self.client.pubsub()
        self.inboxes: dict[str, set[Inbox]] = {}
        self.ready: dict[str, asyncio.Future] = {}  # each channel's latest subscription
        self.unconfirmed: dict[str, deque[asyncio.Future]] = {}  # SUBSCRIBEs sent, in order
        self.reader: asyncio.Task | None = None
        self.connecting = asyncio.Lock()
        self.closed = False

    async def join(self, inbox: Inbox) -> bool:
        """Subscribe `inbox` to its channels; whether Redis confirmed them in time."""
        new = [c for c in inbox.channels if c not in self.inboxes]
        for channel in inbox.channels:
            self.inboxes.setdefault(channel, set()).add(inbox)
        for channel in new:
            self.ready[channel] = self.loop.create_future()
            self.unconfirmed.setdefault(channel, deque()).append(self.ready[channel])
        waits = [self.ready[c] for c in inbox.channels]
        try:
            async with self.connecting:  # one connection, whoever comes first makes it
                if self.reader is None:
                    await self.pubsub.connect()
                    self.reader = self.loop.create_task(self._read())
            if new:
                await self.pubsub.subscribe(*new)
            done, _ = await asyncio.wait(waits, timeout=TIMEOUTS["socket_timeout"])
        except (redis.RedisError, OSError):
            logger.warning("Redis did not take the subscription", exc_info=True)
            self.broken()
            return False
        return len(done) == len(waits) and not any(f.exception() for f in done)

    async def leave(self, inbox: Inbox) -> None:
        gone = []
        for channel in inbox.channels:
            readers = self.inboxes.get(channel)
            if readers is not None:
                readers.discard(inbox)
                if not readers:
                    del self.inboxes[channel], self.ready[channel]
                    gone.append(channel)
        if self.closed:
            return
        if not self.inboxes:
            await self.close()
        elif gone:
            try:
                await self.pubsub.unsubscribe(*gone)
            except (redis.RedisError, OSError):
                self.broken()

    async def _read(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=None)
                if message is None:
                    continue
                channel = str_if_bytes(message["channel"])
                if message["type"] == "subscribe":
                    pending = self.unconfirmed.get(channel)
                    if pending:
                        future = pending.popleft()
                        if not future.done():
                            future.set_result(None)
                        if not pending:
                            del self.unconfirmed[channel]
                elif message["type"] == "message":
                    change = _parse(message["data"])
                    for inbox in self.inboxes.get(channel, ()) if change else ():
                        inbox.put(change)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("The change notifications' connection broke", exc_info=True)
            self.broken()

    def broken(self) -> None:
        """Every inbox polls from now on; the next reader opens a new hub."""
        for readers in self.inboxes.values():
            for inbox in readers:
                inbox.put(_LOST)
        for pending in self.unconfirmed.values():
            for future in pending:
                if not future.done():
                    future.set_exception(redis.ConnectionError("subscription lost"))
        self.unconfirmed.clear()
        if not self.closed:
            self._retire()
            self.loop.create_task(self._shut())

    async def close(self) -> None:
        if not self.closed:
            self._retire()
            await self._shut()

    def _retire(self) -> None:
        self.closed = True
        if _hubs.get(self.loop) is self:
            del _hubs[self.loop]

    async def _shut(self) -> None:
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()


_hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.closed:
        hub = _hubs[loop] = _Hub(loop)
    return hub


@contextlib.asynccontextmanager
async def listen(channels: Iterable[str]) -> AsyncIterator[Inbox]:
    """Subscribe to `channels` for the block; without Redis, or when it does not answer, the
    inbox only paces the caller's polling."""
    if not enabled():
        yield Inbox()
        return
    hub = _hub()
    inbox = Inbox(channels)
    try:
        if not await hub.join(inbox):
            logger.warning("Redis did not confirm the subscription; polling instead")
            inbox.poll()
        yield inbox
    finally:
        await hub.leave(inbox)
