"""The fair queue (issue 14): one user's backlog holds at most EASEL_USER_CONCURRENCY places in
the task queue; the rest wait in Easel and go in, highest priority then oldest first, as that
user's generations end. Another user's generation so waits behind a few of theirs, not all."""

from __future__ import annotations

import time

import pytest

from generator import actions
from generator.models import Generation
from generator.tasks import reap_generations, release
from tests.conftest import make_user, require, uses_postgres
from tests.procs import Worker, redis_available

S = Generation.Status


def submit_n(user, model, n, prefix="gen"):
    data = {"model": model, "num_images": 1, "options": {"size": "512x512"}}
    return [actions.submit(user, {**data, "prompt": f"{prefix} {i}"})[0] for i in range(n)]


def sent(gens) -> list[bool]:
    rows = Generation.objects.in_bulk([g.pk for g in gens])
    return [rows[g.pk].dispatched_at is not None for g in gens]


@pytest.mark.django_db
def test_a_backlog_sends_only_the_cap_and_each_end_sends_the_next(
    owner, local_model, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.EASEL_USER_CONCURRENCY = 3
    calls = []
    monkeypatch.setattr(
        "generator.tasks.run_generation.apply_async", lambda args, **kw: calls.append(args[0])
    )
    with django_capture_on_commit_callbacks(execute=True):
        gens = submit_n(owner, local_model, 7)
    assert sent(gens) == [True] * 3 + [False] * 4
    assert calls == [g.pk for g in gens[:3]]
    waiting = Generation.objects.waiting(owner.pk)
    assert waiting.count() == 4 and all(g.status == S.QUEUED for g in waiting)
    # One of the three ends: exactly one more goes, the oldest.
    Generation.objects.get(pk=gens[0].pk).fail("boom")
    with django_capture_on_commit_callbacks(execute=True):
        assert release(owner.pk) == 1
        assert release(owner.pk) == 0  # nothing more until another ends
    assert calls[-1] == gens[3].pk
    assert sent(gens) == [True] * 4 + [False] * 3


@pytest.mark.django_db
def test_a_cancel_frees_the_place_and_priority_goes_first(
    owner, local_model, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.EASEL_USER_CONCURRENCY = 1
    calls = []
    monkeypatch.setattr(
        "generator.tasks.run_generation.apply_async", lambda args, **kw: calls.append(args[0])
    )
    with django_capture_on_commit_callbacks(execute=True):
        first, older, newer = submit_n(owner, local_model, 3)
    Generation.objects.filter(pk=newer.pk).update(priority=2)  # the high tier (0 goes first)
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.cancel(Generation.objects.get(pk=first.pk), "Stopped.")
    assert calls == [first.pk, newer.pk]


@pytest.mark.django_db
def test_a_user_with_nothing_in_flight_goes_one_step_ahead_within_the_tier(
    owner, stranger, local_model, settings, django_capture_on_commit_callbacks, monkeypatch
):
    """Least-running first: the first of a user's generations is sent one priority step ahead
    (Redis serves 0 first), so it overtakes another user's backlog but never a higher tier."""
    settings.EASEL_USER_CONCURRENCY = 4
    sent_with = []
    monkeypatch.setattr(
        "generator.tasks.run_generation.apply_async",
        lambda args, **kw: sent_with.append(kw["priority"]),
    )
    with django_capture_on_commit_callbacks(execute=True):
        submit_n(owner, local_model, 3)
        submit_n(stranger, local_model, 1)
    medium = owner.celery_priority
    assert sent_with == [medium - 1, medium, medium, stranger.celery_priority - 1]


@pytest.mark.django_db
def test_no_cap_is_plain_fifo_and_the_reaper_sends_what_waits(
    owner, local_model, settings, django_capture_on_commit_callbacks, monkeypatch
):
    calls = []
    monkeypatch.setattr(
        "generator.tasks.run_generation.apply_async", lambda args, **kw: calls.append(args[0])
    )
    settings.EASEL_USER_CONCURRENCY = 0
    with django_capture_on_commit_callbacks(execute=True):
        gens = submit_n(owner, local_model, 6)
    assert sent(gens) == [True] * 6
    # Rows left waiting (the cap was lowered meanwhile, or a release was lost): the reaper
    # sends them within the cap.
    settings.EASEL_USER_CONCURRENCY = 8
    Generation.objects.filter(pk__in=[g.pk for g in gens[3:]]).update(dispatched_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_generations()["redispatched"] == 3
    assert sent(gens) == [True] * 6


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_heavy_users_backlog_does_not_hold_up_another_user(
    tmp_path, settings, django_user_model, local_model
):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    from config.celery import app

    app.conf.task_always_eager = False
    settings.EASEL_LOCAL_PROVIDER_DELAY = 0  # the image is made inside run_generation
    settings.EASEL_USER_CONCURRENCY = 2
    worker = Worker(tmp_path / "worker.log", concurrency=1, EASEL_USER_CONCURRENCY="2")
    worker.purge()
    heavy = make_user(django_user_model)
    light = make_user(django_user_model)
    try:
        backlog = submit_n(heavy, local_model, 40, prefix="crowd")
        worker.start()
        (mine,) = submit_n(light, local_model, 1, prefix="mine")
        end = time.monotonic() + 120
        while time.monotonic() < end:
            mine.refresh_from_db()
            if mine.is_final:
                break
            time.sleep(0.05)
        assert mine.status == S.COMPLETED, worker.log()
        before = Generation.objects.filter(
            pk__in=[g.pk for g in backlog], finished_at__lt=mine.finished_at
        ).count()
    finally:
        worker.stop()
    # FIFO would finish all 40 first; the fair queue lets at most the two in the task queue
    # (and those their ends sent meanwhile) go before it.
    assert before <= 6, (before, worker.log())
