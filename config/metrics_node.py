"""A node's own metrics and the workers' heartbeats: what both a web node's /metrics
(config/metrics.py) and a worker's metrics server (config/worker_metrics.py) need, without the
models (a worker imports this before Django starts)."""

from __future__ import annotations

import os
import time

from django.core.cache import cache
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

HEARTBEATS_KEY = "metrics:worker-heartbeats"


def record_heartbeat(worker: str, every: float) -> None:
    """A worker is alive (config/worker_metrics.py calls this every `every` seconds). Kept in
    the cache (Redis, or the embedded file cache): one key per worker that expires after a few
    missed beats, and an index of names that each beat re-adds itself to (a lost race heals at
    the next beat)."""
    cache.set(f"metrics:heartbeat:{worker}", time.time(), timeout=int(every * 4) + 1)
    names = set(cache.get(HEARTBEATS_KEY) or ())
    if worker not in names:
        cache.set(HEARTBEATS_KEY, sorted(names | {worker}), timeout=None)


def worker_heartbeats() -> dict[str, float]:
    names = cache.get(HEARTBEATS_KEY) or ()
    found = cache.get_many([f"metrics:heartbeat:{n}" for n in names])
    return {key.removeprefix("metrics:heartbeat:"): float(v) for key, v in found.items()}


def node_registry() -> CollectorRegistry:
    """This node's observations: every process's (multiprocess mode) or this process's."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
