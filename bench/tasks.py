"""The baseline Celery task for `make bench`: as little work as a task can do and still be
counted (one Redis INCR). Loaded only by the bench's worker (`celery worker -I bench.tasks`)."""

from __future__ import annotations

import os

import redis
from celery import shared_task

_client = None


def counter():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _client


@shared_task(acks_late=True, ignore_result=True)
def noop(key: str) -> None:
    counter().incr(key)
