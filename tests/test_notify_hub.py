"""The readers of one web process share one Redis subscriber connection (generator/notify.py):
many waits at once hold one connection, each still ends on its own notification, and when that
connection breaks every wait polls the row instead and nothing is missed.

As in tests/test_live_events.py, the fallback look at the row (EASEL_LIVE_RECHECK_SECONDS) is
set far beyond the tests' patience, so only a notification (or, once the connection is gone,
polling) can end a wait in time.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings

from generator import notify, waiting
from generator.models import Generation
from tests.conftest import require
from tests.procs import redis_available

pytestmark = pytest.mark.django_db(transaction=True)

WAITS = 12


@pytest.fixture
def live(settings):
    require(redis_available(), "needs REDIS_URL with a running Redis")
    settings.EASEL_LIVE_RECHECK_SECONDS = 120
    return redis.Redis.from_url(django_settings.REDIS_URL)


def hub_connections(client: redis.Redis) -> list[dict]:
    return [c for c in client.client_list() if c.get("name") == notify.HUB_CLIENT_NAME]


async def until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await sync_to_async(condition)():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.05)


def test_concurrent_waits_share_one_connection_and_each_ends_on_its_message(
    live, owner, make_generation
):
    gens = [make_generation(owner, status=Generation.Status.RUNNING) for _ in range(WAITS)]
    before = len(hub_connections(live))

    async def scenario():
        started = time.monotonic()
        waits = [asyncio.create_task(waiting.settled(g.pk, timeout=60)) for g in gens]
        # Every wait subscribed (one channel each) on one connection of this process.
        channels = [notify.gen_channel(g.pk) for g in gens]
        await until(lambda: all(n == 1 for _, n in live.pubsub_numsub(*channels)))
        during = len(hub_connections(live))
        for i, gen in enumerate(gens):
            row = await sync_to_async(Generation.objects.get)(pk=gen.pk)
            if i % 2:
                await sync_to_async(row.fail)("Provider said no.")
            else:
                await sync_to_async(row.cancel)()
        statuses = await asyncio.gather(*waits)
        return during, statuses, time.monotonic() - started

    during, statuses, took = async_to_sync(scenario)()
    assert during == before + 1
    assert statuses == [
        Generation.Status.FAILED if i % 2 else Generation.Status.CANCELED for i in range(WAITS)
    ]
    # Not a speed figure: without the messages each wait would end only at its 60-s timeout.
    assert took < 30
    # The last reader gone, the connection is closed.
    deadline = time.monotonic() + 5
    while len(hub_connections(live)) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hub_connections(live)) == before


def test_a_broken_connection_makes_every_wait_poll_and_the_next_reader_opens_a_new_one(
    live, owner, make_generation
):
    gens = [make_generation(owner, status=Generation.Status.RUNNING) for _ in range(4)]
    channels = [notify.gen_channel(g.pk) for g in gens]

    def subscribed() -> bool:
        return all(n == 1 for _, n in live.pubsub_numsub(*channels))

    async def scenario():
        waits = [asyncio.create_task(waiting.settled(g.pk, timeout=60)) for g in gens]
        await until(subscribed)
        ours = [c for c in hub_connections(live) if int(c["sub"]) >= len(gens)]
        assert ours, "no subscriber connection holds the waits' channels"
        for c in ours:
            live.client_kill_filter(_id=c["id"])
        await until(lambda: not subscribed())
        # Changed while nothing is subscribed: no message reaches the waits; polling must.
        for gen in gens:
            row = await sync_to_async(Generation.objects.get)(pk=gen.pk)
            await sync_to_async(row.cancel)()
        statuses = await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
        # A new wait after the break subscribes again, on a new connection, and its message
        # ends it.
        fresh = await sync_to_async(make_generation)(owner, status=Generation.Status.RUNNING)
        again = asyncio.create_task(waiting.settled(fresh.pk, timeout=60))
        await until(lambda: live.pubsub_numsub(notify.gen_channel(fresh.pk))[0][1] == 1)
        row = await sync_to_async(Generation.objects.get)(pk=fresh.pk)
        await sync_to_async(row.fail)("Provider said no.")
        return statuses, await asyncio.wait_for(again, timeout=30)

    statuses, last = async_to_sync(scenario)()
    assert statuses == [Generation.Status.CANCELED] * len(gens)
    assert last == Generation.Status.FAILED
