"""One Redis for broker and cache, stopped (issue 14): pages keep working without the cache, a
submission is saved `queued` and runs once Redis is back; sessions live in the database.

Real parts: a redis-server process of its own on a spare port (stopped = nothing listening
there), PostgreSQL, and a real `celery worker` once Redis is back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from config.celery import app as celery_app
from generator.models import Generation
from generator.tasks import reap_generations
from tests.conftest import require, uses_postgres
from tests.procs import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_redis(settings, tmp_path):
    """Broker and cache pointed at a Redis that is not running; `start()` brings it up."""
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(shutil.which("redis-server") is not None, "needs redis-server")
    port = spare_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
        }
    }
    saved = (celery_app.conf.broker_url, celery_app.conf.task_always_eager)
    options = dict(celery_app.conf.broker_transport_options or {})
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport_options = {**options, "socket_connect_timeout": 0.5}
    celery_app.conf.task_always_eager = False
    celery_app._pool = None  # the producer pool is bound to the broker it was made for
    celery_app.amqp._producer_pool = None
    procs = []

    class Dead:
        def start(self):
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                    stdout=subprocess.DEVNULL,
                )
            )
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    if redis.Redis.from_url(url).ping():
                        return
                except redis.RedisError:
                    time.sleep(0.1)
            raise AssertionError("redis-server did not start")

    Dead.url = url
    yield Dead()
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
    celery_app.conf.broker_transport_options = options
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_pages_work_and_a_submission_waits_for_redis_then_runs(
    dead_redis, owner_client, owner, local_model, tmp_path, settings
):
    for path in ("/", "/gallery/", "/account/usage/", "/healthz"):
        assert owner_client.get(path).status_code == 200, path
    response = owner_client.post(
        "/", {"model": local_model.slug, "prompt": "a fox", "size": "512x512", "num_images": 1}
    )
    assert response.status_code == 302  # accepted, not a 500
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.QUEUED and gen.dispatched_at is None  # never sent
    assert owner_client.get("/gallery/").status_code == 200  # still signed in (database sessions)

    dead_redis.start()
    worker = Worker(tmp_path / "worker.log", concurrency=1, REDIS_URL=dead_redis.url)
    worker.start()
    try:
        reap_generations()  # beat's run once Redis is back: sends what waits
        end = time.monotonic() + 60
        while time.monotonic() < end:
            gen.refresh_from_db()
            if gen.is_final:
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    assert gen.status == Generation.Status.COMPLETED, worker.log()


def test_signing_in_works_while_the_cache_is_down(dead_redis, client, owner):
    """allauth's rate limit takes a lock with cache.add(); refused while Redis is down, it
    answered every sign-in with a 429 for the outage (tests/test_multinode.py saw it)."""
    response = client.post("/accounts/login/", {"login": owner.email, "password": "pw-Secret-123"})
    assert response.status_code == 302, response.status_code
    assert client.get("/gallery/").status_code == 200
