"""A deploy: SIGTERM to a worker while a generation is with the provider. The generation finishes
(warm shutdown) or is handed back to the next worker, never failed, and it is sent to the
provider exactly once (issue 16).

Real parts: PostgreSQL, Redis, `celery worker` processes, and provider simulators over loopback
HTTP (test equipment): the OpenAI simulator holding a synchronous reply for seconds, and the
counting simulator's polled job that takes seconds to finish.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from config.celery import app as celery_app
from generator import actions
from generator.models import AIModel, Generation
from generator.tasks import reap_generations
from tests.conftest import require, uses_postgres
from tests.procs import Worker, redis_available
from tests.simulators.counting import URL_ENV, CountingSimulator
from tests.simulators.openai import OpenAISimulator

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

# How a deploy stops the worker: SIGTERM to its main process (docker stop, Kubernetes, celery
# multi), or to every process of its group (systemd's default KillMode=control-group).
HOW = {
    "main": lambda pid: os.kill(pid, signal.SIGTERM),
    "group": lambda pid: os.killpg(pid, signal.SIGTERM),
}
SHORT = {"EASEL_LEASE_SECONDS": "3", "EASEL_REQUEUE_AFTER_SECONDS": "3"}


def wait_for(predicate, timeout: float, every: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@pytest.fixture
def fleet(settings, tmp_path):
    """Every worker a test starts; all stopped (and waited for) at the end."""
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    celery_app.conf.task_always_eager = False
    settings.EASEL_LEASE_SECONDS = 3
    settings.EASEL_REQUEUE_AFTER_SECONDS = 3
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.stop()


def logs(fleet) -> str:
    return "\n".join(worker.log() for worker in fleet)


def submit(owner, model, prompt: str, size: str) -> Generation:
    data = {"model": model, "prompt": prompt, "num_images": 1, "options": {"size": size}}
    return actions.submit(owner, data)[0]


def start_worker(fleet, tmp_path, include=(), **env) -> Worker:
    worker = Worker(tmp_path / f"worker{len(fleet)}.log", concurrency=1, include=include, **env)
    fleet.append(worker)
    if len(fleet) == 1:
        worker.purge()
    return worker.start()


def deploy(fleet, tmp_path, how: str, gen: Generation, include=(), **env) -> str:
    """SIGTERM the worker, wait until all of it has gone, then start its successor and run the
    reaper as beat would until the generation ends. Returns the status the generation had when
    the old worker was gone."""
    worker = fleet[-1]
    HOW[how](worker.proc.pid)
    worker.proc.wait(timeout=60)  # warm shutdown: it may finish the task in hand first
    worker.stop()  # waits for every process of the group (pool children) to be gone
    gen.refresh_from_db()
    between = gen.status
    start_worker(fleet, tmp_path, include, **env)

    def ended() -> bool:
        reap_generations()
        gen.refresh_from_db()
        return gen.is_final

    assert wait_for(ended, 90, every=0.5), (gen.status, logs(fleet))
    return between


# Only "main": SIGTERM to a pool child kills it mid-request (Celery resets SIGTERM to its default
# in pool children), and a request that may have reached the provider is never sent again, so
# that generation ends failed. Deploys must signal the main process only (docs: DEPLOY).
@pytest.mark.parametrize("how", ["main"])
def test_sigterm_during_a_synchronous_provider_call_finishes_it(fleet, tmp_path, owner, how):
    with OpenAISimulator() as sim:
        model = AIModel.objects.create(
            slug="dalle-sync",
            name="DALL-E sync",
            provider="openai",
            remote_id="dall-e-2",
            timeout_seconds=120,
            options={"sizes": ["256x256"], "max_images": 1, "seed": False},
        )
        # The provider holds its reply to the (billable) POST for 4 s: the deploy lands inside.
        sim.faults.set(hang=4.0, only=r"^/v1/images/generations$", times=1)
        env = {**SHORT, "OPENAI_API_KEY": sim.api_key, "OPENAI_BASE_URL": sim.url}
        start_worker(fleet, tmp_path, **env)
        gen = submit(owner, model, "a lighthouse in the rain", "256x256")
        posts = lambda: [r for r in sim.requests if r.path == "/v1/images/generations"]  # noqa: E731
        assert wait_for(lambda: posts(), 60), logs(fleet)
        between = deploy(fleet, tmp_path, how, gen, **env)
        log = logs(fleet)
        assert between != Generation.Status.FAILED, (gen.error, log)
        assert gen.status == Generation.Status.COMPLETED, (gen.error, log)
        assert gen.images.count() == 1
        assert len(posts()) == 1, "the request was sent to the provider again"


@pytest.mark.parametrize("how", sorted(HOW))
def test_sigterm_while_a_polled_job_runs_hands_it_to_the_next_worker(fleet, tmp_path, owner, how):
    model = AIModel.objects.create(
        slug="counting-poll",
        name="Counting simulator",
        provider="counting-sim",
        remote_id="sim",
        timeout_seconds=120,
        options={"sizes": ["64x64"], "max_images": 1, "defaults": {"size": "64x64"}},
    )
    with CountingSimulator(job_seconds=5.0) as sim:
        include = ("tests.simulators.counting",)
        env = {**SHORT, URL_ENV: sim.url}
        start_worker(fleet, tmp_path, include, **env)
        gen = submit(owner, model, "a fox in the snow", "64x64")
        # Submitted, and polled a few times: the deploy lands between or inside polls.
        polled = lambda: sum(r.method == "GET" for r in sim.requests) >= 3  # noqa: E731
        assert wait_for(polled, 60), logs(fleet)
        between = deploy(fleet, tmp_path, how, gen, include, **env)
        log = logs(fleet)
        assert between == Generation.Status.RUNNING, (between, gen.error, log)
        assert gen.status == Generation.Status.COMPLETED, (gen.error, log)
        assert gen.images.count() == 1
        assert sim.submissions[str(gen.public_id)] == 1 and not sim.duplicates
