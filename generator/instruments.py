"""Prometheus instruments (issue #16), observed where things happen; served by /metrics.

A leaf beside counters: imports prometheus_client only, so the model can observe its own state
changes. Each process observes into prometheus_client's registry; under gunicorn or a prefork
Celery worker, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py and config/celery.py, see
config/metrics_env.py) makes every process of a node write to one folder that the node's
endpoint reads, so one scrape sees the whole node.

Names follow Prometheus' naming guide (https://prometheus.io/docs/practices/naming/): a unit
suffix, `_total` on counters, low-cardinality labels (provider, status, a route pattern — never a
user or a generation id).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds a generation waits and runs: from sub-second local renders to a provider's minutes.
TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

GENERATIONS_FINISHED = Counter(
    "easel_generations_finished_total",
    "Generations that reached a final status, by provider and status.",
    ["provider", "status"],
)
FAILURES = Counter(
    "easel_generation_failures_total",
    "Failed generations by provider and reason class: not_sent (refused before any request "
    "reached the provider), provider (the provider refused or failed it), easel (Easel's own "
    "part failed after the provider worked), unknown (the request may have reached the "
    "provider; never resent).",
    ["provider", "reason_class"],
)
QUEUE_WAIT = Histogram(
    "easel_queue_wait_seconds",
    "From accepted (created) to claimed by a worker and sent to the provider.",
    ["provider"],
    buckets=TIME_BUCKETS,
)
PROVIDER_LATENCY = Histogram(
    "easel_provider_latency_seconds",
    "From sent to the provider to final (completed or failed), for generations that were sent.",
    ["provider", "status"],
    buckets=TIME_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "easel_http_requests_total",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "easel_http_request_duration_seconds",
    "Time to answer an HTTP request (to the first byte of a streamed one), by method and route.",
    ["method", "route"],
)


def generation_finished(gen, status: str, reason_class: str | None) -> None:
    """A generation reached `status` (a final one); `reason_class` for failures."""
    provider = gen.provider or "unknown"
    GENERATIONS_FINISHED.labels(provider, status).inc()
    if reason_class:
        FAILURES.labels(provider, reason_class).inc()
    if gen.submitted_at is not None and gen.finished_at is not None:
        seconds = (gen.finished_at - gen.submitted_at).total_seconds()
        PROVIDER_LATENCY.labels(provider, status).observe(max(seconds, 0.0))


def generation_claimed(gen) -> None:
    """A worker claimed a queued generation and is sending it to the provider."""
    if gen.created_at is not None and gen.started_at is not None:
        seconds = (gen.started_at - gen.created_at).total_seconds()
        QUEUE_WAIT.labels(gen.provider or "unknown").observe(max(seconds, 0.0))
