"""Priority tiers on a real Celery worker (Redis priority queues): one heavy low-priority user
cannot starve a high-priority user who submits afterwards."""

from __future__ import annotations

import time

import pytest

from generator import actions
from generator.models import Generation
from tests.conftest import make_user, require, uses_postgres
from tests.procs import Worker, redis_available

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_worker(tmp_path, settings):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    from config.celery import app

    app.conf.task_always_eager = False
    settings.EASEL_LOCAL_PROVIDER_DELAY = 0  # images are made inside run_generation
    w = Worker(tmp_path / "worker.log", concurrency=1)
    w.purge()
    yield w
    w.stop()


def test_a_high_priority_user_overtakes_a_heavy_low_priority_backlog(
    one_worker, django_user_model, local_model
):
    heavy = make_user(django_user_model, priority="low")
    vip = make_user(django_user_model, priority="high")
    data = {"model": local_model, "num_images": 2, "options": {"size": "512x512"}}
    backlog = [actions.submit(heavy, {**data, "prompt": f"crowd {i}"})[0] for i in range(20)]
    one_worker.start()
    # The worker is busy with the backlog before the VIP submits.
    end = time.monotonic() + 60
    pks = [g.pk for g in backlog]
    while (
        time.monotonic() < end
        and not Generation.objects.filter(pk__in=pks, status="completed").exists()
    ):
        time.sleep(0.05)
    urgent, _ = actions.submit(vip, {**data, "prompt": "urgent"})

    end = time.monotonic() + 120
    while time.monotonic() < end:
        urgent.refresh_from_db()
        if urgent.is_final:
            break
        time.sleep(0.05)
    assert urgent.status == "completed", one_worker.log()
    done_before = Generation.objects.filter(
        pk__in=[g.pk for g in backlog], status="completed", finished_at__lt=urgent.finished_at
    ).count()
    # With one worker and FIFO it would wait for all 20; by priority it waits for the task in
    # hand (and at most one prefetched), not the backlog.
    print("low-priority finished before the urgent one:", done_before)
    assert done_before <= 10, f"{done_before} of 20 low-priority generations finished first"
    assert urgent.priority < backlog[0].priority
