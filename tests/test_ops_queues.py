"""Providers on their own queues (EASEL_PROVIDER_QUEUES, issue 16): a slow provider's backlog
does not hold up another provider's generation, when each queue has its own worker.

Real parts: PostgreSQL, Redis, two `celery worker` processes (one per queue, `-Q`), and two
OpenAI-style simulators over loopback HTTP (test equipment): AI Refinery slow (each reply held
1 s), OpenAI fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.celery import DEFAULT_QUEUE, provider_queues, task_queues
from config.celery import app as celery_app
from generator import actions, tasks
from generator.models import AIModel, Generation
from tests.conftest import require, uses_postgres
from tests.procs import ROOT, Worker, redis_available
from tests.simulators.openai import OpenAISimulator

SLOW = "slow"
BACKLOG = 8


class QueueWorker(Worker):
    """A worker that consumes the named queues only (`-Q`); tests/procs.py's Worker has no way
    to pass them."""

    def __init__(self, log_path, queues: str, **env):
        super().__init__(log_path, concurrency=1, **env)
        self.queues = queues

    def start(self) -> QueueWorker:
        log = open(self.log_path, "ab")
        name = f"test-{self.queues}-{os.getpid()}-{time.monotonic_ns()}@%h"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO"]
            + ["--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            + ["-Q", self.queues, "-n", name],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


def test_provider_queues_are_parsed_and_declared():
    assert provider_queues(" replicate = slow , meteron=slow,,") == {
        "replicate": SLOW,
        "meteron": SLOW,
    }
    assert provider_queues("") == {} and task_queues({}) is None
    queues = task_queues({"replicate": SLOW, "meteron": SLOW})
    # One queue each, with its own routing key: a message lands in one queue only.
    assert [(q.name, q.routing_key, q.exchange.name) for q in queues] == [
        (DEFAULT_QUEUE, DEFAULT_QUEUE, DEFAULT_QUEUE),
        (SLOW, SLOW, SLOW),
    ]
    with pytest.raises(ImproperlyConfigured, match="provider=queue"):
        provider_queues("replicate")


@pytest.mark.django_db
def test_run_and_check_messages_go_to_the_providers_queue(settings, owner, monkeypatch):
    settings.EASEL_PROVIDER_QUEUES = {"airefinery": SLOW}
    sent: list[tuple[str, dict]] = []
    for task in (tasks.run_generation, tasks.check_generation):
        monkeypatch.setattr(
            task, "apply_async", lambda args, t=task, **kw: sent.append((t.name, kw))
        )
    for provider in ("airefinery", "openai"):
        model = AIModel.objects.create(slug=provider, name=provider, provider=provider)
        gen = Generation.objects.create(
            user=owner, model=model, provider=provider, prompt="p", priority=3
        )
        tasks._send(gen, None, True, 3)
        tasks._schedule_check(gen, 1.0, 1)
    queues = [(name.rsplit(".", 1)[1], kw.get("queue"), kw["priority"]) for name, kw in sent]
    assert queues == [
        ("run_generation", SLOW, 3),
        ("check_generation", SLOW, 3),
        ("run_generation", None, 3),  # None: the default queue
        ("check_generation", None, 3),
    ]
    assert all(kw["headers"]["easel_provider"] in {"airefinery", "openai"} for _, kw in sent)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_a_fast_providers_generation_does_not_wait_behind_a_slow_providers_backlog(
    tmp_path, settings, owner
):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    celery_app.conf.task_always_eager = False
    settings.EASEL_USER_CONCURRENCY = 0  # plain FIFO: only the queues can keep them apart
    settings.EASEL_PROVIDER_QUEUES = {"airefinery": SLOW}
    with OpenAISimulator() as fast, OpenAISimulator(flavour="airefinery", api_key="air") as slow:
        slow.faults.set(hang=1.0, only=r"^/v1/images/generations$")
        env = {
            "EASEL_USER_CONCURRENCY": "0",
            "EASEL_PROVIDER_QUEUES": f"airefinery={SLOW}",
            "OPENAI_API_KEY": fast.api_key,
            "OPENAI_BASE_URL": fast.url,
            "AIREFINERY_API_KEY": slow.api_key,
            "AIREFINERY_BASE_URL": slow.url,
        }
        options = {"sizes": ["256x256"], "max_images": 1, "seed": False}
        air = AIModel.objects.create(
            slug="air", name="Air", provider="airefinery", remote_id="flux", options=options
        )
        dalle = AIModel.objects.create(
            slug="dalle", name="Dalle", provider="openai", remote_id="dall-e-2", options=options
        )
        data = {"num_images": 1, "options": {"size": "256x256"}}
        workers = [
            QueueWorker(tmp_path / "default.log", DEFAULT_QUEUE, **env),
            QueueWorker(tmp_path / "slow.log", SLOW, **env),
        ]
        workers[0].purge()
        try:
            backlog = [
                actions.submit(owner, {**data, "model": air, "prompt": f"slow {i}"})[0]
                for i in range(BACKLOG)
            ]
            for worker in workers:
                worker.start()
            rows = Generation.objects.filter(pk__in=[g.pk for g in backlog])
            end = time.monotonic() + 60
            while time.monotonic() < end and not rows.exclude(status="queued").exists():
                time.sleep(0.05)
            quick = actions.submit(owner, {**data, "model": dalle, "prompt": "quick"})[0]
            end = time.monotonic() + 120
            while time.monotonic() < end and not quick.is_final:
                time.sleep(0.05)
                quick.refresh_from_db()
            log = "\n".join(w.log() for w in workers)
            assert quick.status == "completed", (quick.error, log)
            before = rows.filter(status="completed", finished_at__lt=quick.finished_at).count()
            end = time.monotonic() + 120
            while time.monotonic() < end and rows.exclude(status__in=Generation.FINAL).exists():
                time.sleep(0.2)
        finally:
            for worker in workers:
                worker.stop()
        print(f"provider-queues: {before} of {BACKLOG} slow ones finished before the fast one")
        # In one queue (FIFO) the fast one waits for the whole backlog; on its own queue for
        # none of it (the slow worker had one in hand when it was submitted).
        assert before <= 2, (before, log)
        assert rows.filter(status="completed").count() == BACKLOG, rows.status_counts()
