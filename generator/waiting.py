"""One way to wait for a generation to change (issue #17).

The API's synchronous requests (Meteron `X-Async: false`, OpenAI `images.generate`) wait here
until a generation is final, and the browser's live cards (generator/events.py) wait on the same
notifications (generator/notify.py): a Redis message when the row changes, a look at the row
every EASEL_LIVE_RECHECK_SECONDS anyway, and plain polling without Redis.

It is async: under the ASGI server (uvicorn, README "Serving") a waiting request holds no
thread, worker process or connection of its own (the process's readers share one Redis
subscription, generator/notify.py; `database` lends its reads a shared thread). Under a WSGI
server (`make run`'s runserver, the tests' live server) Django runs the same view in the
request's thread, which it holds.
"""

from __future__ import annotations

import functools
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from generator import notify
from generator.models import Generation


def released(read):
    """`read`, then its connection goes back (to the pool: DATABASE_POOL_SIZE) unless a
    transaction holds it: a reader that waits minutes between two reads holds none meanwhile."""

    @functools.wraps(read)
    def wrapper(*args, **kwargs):
        try:
            return read(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return wrapper


async def database(work, *args):
    """`work(*args)`, the database part of an async view, from the event loop.

    With a pool (DATABASE_POOL_SIZE: the ASGI server, config/asgi.py) it runs on the event
    loop's few shared threads and gives its connection back after, instead of in a thread of
    the request's own: 200 waiting requests were some 200 threads handing the GIL round, and
    that contention cost about 3 s of the 200-wait burst (bench/live_wait.py: 18.0 s -> 15.2 s,
    2026-12-03). Without a pool (a WSGI server, the in-process tests) each thread keeps its
    own connection, so the work runs in the request's thread, as Django does.
    """
    if settings.DATABASE_POOL_SIZE:
        return await sync_to_async(released(work), thread_sensitive=False)(*args)
    return await sync_to_async(work)(*args)


@released
def _status(pk: int) -> str:
    return Generation.objects.values_list("status", flat=True).get(pk=pk)


def _final(status: str) -> bool:
    return status in Generation.FINAL


def _deadline(timeout: float | None) -> float:
    return time.monotonic() + (settings.EASEL_API_SYNC_TIMEOUT if timeout is None else timeout)


async def settled(pk: int, timeout: float | None = None) -> str:
    """Wait until generation `pk` is final or `timeout` seconds (default
    EASEL_API_SYNC_TIMEOUT) pass; return its status then."""
    deadline = _deadline(timeout)
    # Subscribed before the first look: a change between the two is a message, not lost.
    async with notify.listen([notify.gen_channel(pk)]) as inbox:
        status = await database(_status, pk)
        while True:
            left = deadline - time.monotonic()
            if _final(status) or left <= 0:
                return status
            change = await inbox.next(min(left, inbox.recheck))
            # The message names the status its change committed: no need to read it back.
            if change is not None and change.status:
                status = change.status
            else:
                status = await database(_status, pk)
