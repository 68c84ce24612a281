"""One way to wait for a generation to change (issue #17).

The API's synchronous requests (Meteron `X-Async: false`, OpenAI `images.generate`) wait here until
a generation is final. `settled` is the async form, for views that must not hold a worker process
while they wait; `settled_sync` is the same wait for sync callers.

Today both poll the database every `POLL_SECONDS`; the notification mechanism replaces the
polling internals without changing these signatures.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from generator.models import Generation

POLL_SECONDS = 0.25


def _status(pk: int) -> str:
    return Generation.objects.values_list("status", flat=True).get(pk=pk)


def _final(status: str) -> bool:
    return status in Generation.FINAL


async def settled(pk: int, timeout: float | None = None) -> str:
    """Wait until generation `pk` is final or `timeout` seconds (default
    EASEL_API_SYNC_TIMEOUT) pass; return its status then."""
    deadline = time.monotonic() + (settings.EASEL_API_SYNC_TIMEOUT if timeout is None else timeout)
    while True:
        status = await sync_to_async(_status)(pk)
        if _final(status) or time.monotonic() >= deadline:
            return status
        await asyncio.sleep(POLL_SECONDS)


def settled_sync(pk: int, timeout: float | None = None) -> str:
    """`settled` for sync callers (it holds the calling thread while it waits)."""
    deadline = time.monotonic() + (settings.EASEL_API_SYNC_TIMEOUT if timeout is None else timeout)
    while True:
        status = _status(pk)
        if _final(status) or time.monotonic() >= deadline:
            return status
        time.sleep(POLL_SECONDS)
