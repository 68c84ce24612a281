"""/metrics for Prometheus (issue #16): off unless EASEL_METRICS_TOKEN is set; then the scraper
sends it as a bearer token (Prometheus' `authorization` scrape setting).

What a scrape of a web node shows:
- what this node's processes observed (generator/instruments.py): HTTP requests by route and
  status with their latency, and the pipeline's instruments for work done in this node (a
  cancel from a page); a worker node's own pipeline observations (queue wait, provider
  latency, finished and failed by provider) are on its EASEL_WORKER_METRICS_PORT
  (config/worker_metrics.py);
- read from the database at scrape time, the same for every node: `easel_generations` by
  provider and status (the staff dashboard's table reads the same query), and each worker's
  last heartbeat (`easel_worker_heartbeat_timestamp_seconds`).
"""

from __future__ import annotations

import hmac
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.metrics_node import node_registry, worker_heartbeats
from generator import instruments
from generator.models import Generation

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class StateCollector:
    """Gauges read from shared state when scraped, so every node reports the same numbers."""

    def collect(self):
        gens = GaugeMetricFamily(
            "easel_generations",
            "Generations stored, by provider and status (the dashboard's 'All generations').",
            labels=["provider", "status"],
        )
        for (provider, status), n in sorted(Generation.objects.counts_by_provider_status().items()):
            gens.add_metric([provider, status], n)
        yield gens
        beats = GaugeMetricFamily(
            "easel_worker_heartbeat_timestamp_seconds",
            "When each Celery worker last said it was alive (Unix time).",
            labels=["worker"],
        )
        for worker, when in sorted(worker_heartbeats().items()):
            beats.add_metric([worker], when)
        yield beats


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.EASEL_METRICS_TOKEN
    if not token:
        raise Http404  # off: nothing says the endpoint exists
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(sent.encode(), token.encode()):
        response = HttpResponse("A bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(StateCollector())
    body = generate_latest(node_registry()) + generate_latest(registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times every request by its route pattern (never the raw path: `/gallery/<id>/`
    not one series per generation). Installed only when metrics are on. Sync and async (a
    sync-only middleware would hold a thread per waiting request under the ASGI server)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        start = time.perf_counter()
        return self._observe(request, self.get_response(request), start)

    async def _acall(self, request: HttpRequest):
        start = time.perf_counter()
        return self._observe(request, await self.get_response(request), start)

    @staticmethod
    def _observe(request: HttpRequest, response, start: float):
        match = getattr(request, "resolver_match", None)
        route = ("/" + match.route) if match is not None and match.route else "unmatched"
        method = request.method if request.method in METHODS else "other"  # a stranger's verb
        instruments.HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)
        instruments.HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response
