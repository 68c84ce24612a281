"""One way to wait (issue #17): Redis notifications end the API's synchronous waits and move the
browser's cards by server-sent events, under the ASGI server (uvicorn) that README "Serving"
names for these paths; without them (WSGI, no Redis) the page polls.

The waits here are set up so that only a notification can end them in time: the readers'
fallback look at the row (EASEL_LIVE_RECHECK_SECONDS) is set far beyond the test's patience.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client as DjangoClient
from PIL import Image

from accounts.models import ApiKey
from generator import waiting
from generator.models import Generation, OutputImage
from tests.conftest import require, uses_postgres
from tests.procs import redis_available, uvicorn
from tests.test_embedded import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def png(size=(32, 32), color=(200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def later(seconds: float, change) -> threading.Timer:
    """Run `change` in another thread after `seconds`, as a worker would (its own connection,
    closed after)."""

    def run():
        try:
            change()
        finally:
            connection.close()

    timer = threading.Timer(seconds, run)
    timer.start()
    return timer


def needs_redis():
    require(redis_available(), "needs REDIS_URL with a running Redis")


def test_a_wait_ends_on_the_notification_not_on_a_recheck(settings, owner, make_generation):
    needs_redis()
    settings.EASEL_LIVE_RECHECK_SECONDS = 120  # no look at the row but the first
    gen = make_generation(owner, status=Generation.Status.RUNNING)
    ender = threading.Timer(
        0.5, lambda: Generation.objects.get(pk=gen.pk).fail("Provider said no.")
    )
    ender.start()
    started = time.monotonic()
    try:
        status = async_to_sync(waiting.settled)(gen.pk, timeout=60)
    finally:
        ender.join()
    assert status == Generation.Status.FAILED
    # Not a speed figure: without the message the wait would only end at its 60-s timeout.
    assert time.monotonic() - started < 30


def test_without_redis_a_wait_polls_the_row(settings, owner, make_generation):
    settings.REDIS_URL = ""
    gen = make_generation(owner, status=Generation.Status.RUNNING)
    ender = later(0.3, lambda: Generation.objects.get(pk=gen.pk).cancel())
    try:
        status = async_to_sync(waiting.settled)(gen.pk, timeout=30)
    finally:
        ender.join()
    assert status == Generation.Status.CANCELED


def test_with_redis_unreachable_a_change_is_still_seen_by_polling(settings, owner, make_generation):
    """Redis stopped (nothing listens on port 1): publishing fails quietly, the subscription
    fails, and the wait polls the row instead; the change is not lost."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    gen = make_generation(owner, status=Generation.Status.RUNNING)
    ender = later(0.3, lambda: Generation.objects.get(pk=gen.pk).fail("Provider said no."))
    try:
        status = async_to_sync(waiting.settled)(gen.pk, timeout=30)
    finally:
        ender.join()
    assert status == Generation.Status.FAILED


def test_events_are_a_404_under_wsgi_so_the_page_polls(settings, owner_client, owner):
    settings.EASEL_LIVE_UPDATES = "sse"
    response = owner_client.get("/events/cards?ids=abc")
    assert response.status_code == 404
    settings.EASEL_LIVE_UPDATES = "poll"
    assert 'data-events=""' in owner_client.get("/").content.decode()


@pytest.fixture
def asgi(tmp_path, settings):
    """uvicorn (one worker process) on the test database, Redis and media, live updates on."""
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    needs_redis()
    env = {
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "EASEL_LIVE_UPDATES": "sse",
        "EASEL_LIVE_RECHECK_SECONDS": "600",
        "EASEL_API_SYNC_TIMEOUT": "60",
        "EASEL_LOCAL_PROVIDER_DELAY": "0.5",
    }
    with uvicorn(tmp_path, free_port(), **env) as (base, _):
        yield base


def test_both_dialects_wait_under_uvicorn(asgi, worker, owner, local_model, tmp_path):
    import openai

    key = ApiKey.issue(owner, "asgi")[1]
    client = openai.OpenAI(base_url=f"{asgi}/v1", api_key=key, max_retries=0, timeout=60)
    result = client.images.generate(
        model=local_model.slug, prompt="a lighthouse", response_format="b64_json"
    )
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).width > 0

    answer = httpx.post(
        f"{asgi}/api/images/generations",
        headers={"Authorization": f"Bearer {key}", "X-Model": local_model.slug},
        json={"prompt": "a harbour"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed" and len(body["outputImages"]) == 1
    served = httpx.get(body["outputImages"][0]["url"], timeout=10)
    assert served.status_code == 200 and Image.open(io.BytesIO(served.content)).width > 0
    assert Generation.objects.filter(user=owner, status="completed", via_api=True).count() == 2


def test_a_card_moves_by_server_sent_events_without_polling(
    asgi, page, owner, make_generation, stranger
):
    gen = make_generation(owner, status=Generation.Status.RUNNING, prompt="a slow heron")
    other = make_generation(stranger, status=Generation.Status.RUNNING, prompt="not mine")
    django = DjangoClient()
    django.force_login(owner)
    page.context.add_cookies(
        [{"name": "sessionid", "value": django.cookies["sessionid"].value, "url": asgi}]
    )
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    # Counts the cards the page's script puts in after load: the stream's events.
    page.add_init_script(
        "window.__cards = 0; let loaded = false;"
        "document.addEventListener('DOMContentLoaded', () => { loaded = true; });"
        "new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach(n => {"
        " if (loaded && n.id && n.id.startsWith('gen-')) window.__cards++; })))"
        ".observe(document, {childList: true, subtree: true});"
    )
    page.goto(f"{asgi}/gallery/")
    assert page.locator(f"#gen-{gen.public_id}").get_attribute("data-status") == "running"
    # The stream's first event is every watched card as it is: it is subscribed by then.
    page.wait_for_function("() => window.__cards > 0")

    name = f"generations/{owner.public_id}/{gen.public_id}/0.png"
    default_storage.save(name, ContentFile(png()))
    stored = OutputImage(  # the test plays the worker storing the image
        generation=gen, index=0, file=name, width=32, height=32, bytes=1, content_type="image/png"
    )
    assert Generation.objects.get(pk=gen.pk).complete_with_images([stored])

    page.wait_for_function(
        f"() => {{ const i = document.querySelector('#gen-{gen.public_id} img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )
    assert page.locator(f"#gen-{gen.public_id}").get_attribute("data-status") == "completed"
    assert not [u for u in requests if "/card/" in u], "the page polled instead of listening"
    assert [u for u in requests if "/events/cards" in u]
    assert page.csp_errors == []

    # Another user's generation is never streamed: its id is simply not watched.
    watched = httpx.get(
        f"{asgi}/events/cards?ids={other.public_id}",
        cookies={"sessionid": django.cookies["sessionid"].value},
        timeout=10,
    )
    assert watched.status_code == 200
    assert "event: end" in watched.text and other.public_id not in watched.text


def test_every_middleware_is_async_capable(settings):
    """One sync-only middleware makes Django run the rest of every request in a thread held
    until it ends: under uvicorn, each waiting request or card stream would hold a thread."""
    from django.utils.module_loading import import_string

    names = [*settings.MIDDLEWARE, "config.metrics.MetricsMiddleware"]
    sync_only = [n for n in names if not getattr(import_string(n), "async_capable", False)]
    assert sync_only == []


def test_open_card_streams_hold_no_database_connection(tmp_path, settings, owner, make_generation):
    """A stream lasts up to 55 s; the sign-in lookup at its start must give its connection back
    to the pool. With a pool of 2 and 3 streams open, a keyed request still gets a connection
    (else it would wait out the pool's 30-s timeout)."""
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    needs_redis()
    gens = [make_generation(owner, status=Generation.Status.RUNNING) for _ in range(3)]
    django = DjangoClient()
    django.force_login(owner)
    cookies = {"sessionid": django.cookies["sessionid"].value}
    key = ApiKey.issue(owner, "pool")[1]
    env = {
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "EASEL_LIVE_UPDATES": "sse",
        "EASEL_LIVE_RECHECK_SECONDS": "600",
        "DATABASE_POOL_SIZE": "2",
    }
    with uvicorn(tmp_path, free_port(), **env) as (base, _):
        with contextlib.ExitStack() as streams:
            for gen in gens:
                client = streams.enter_context(httpx.Client(base_url=base, cookies=cookies))
                stream = streams.enter_context(
                    client.stream("GET", f"/events/cards?ids={gen.public_id}", timeout=20)
                )
                lines = stream.iter_lines()
                assert next(line for line in lines if line.startswith("event:")) == "event: card"
            # Every stream is open, past its sign-in and first look, and waiting.
            answer = httpx.get(
                f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=15
            )
            assert answer.status_code == 200, answer.text
