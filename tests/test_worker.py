"""A real Celery worker process against PostgreSQL and Redis."""

from __future__ import annotations

import time

import pytest

from generator import actions
from generator.models import Generation

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_final(pks, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = list(Generation.objects.filter(pk__in=pks))
        if all(g.is_final for g in rows):
            return rows
        time.sleep(0.2)
    return list(Generation.objects.filter(pk__in=pks))


def test_a_real_worker_takes_generations_to_completed(worker, owner, local_model):
    gens = [
        actions.submit(
            owner,
            {
                "model": local_model,
                "prompt": f"harbour {i}",
                "num_images": 2,
                "options": {"size": "256x256"},
            },
        )[0]
        for i in range(4)
    ]
    rows = wait_final([g.pk for g in gens])
    assert [g.status for g in rows] == ["completed"] * 4, worker.log()
    for gen in rows:
        assert gen.images.count() == 2
        assert gen.provider_job_id.startswith("local-")  # the delayed path: job, then checks
        assert gen.started_at >= gen.created_at and gen.finished_at > gen.started_at
