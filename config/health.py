"""/healthz (the process answers) and /readyz (each dependency reachable), for load balancers.

Neither needs a login nor shows a secret: /readyz names each dependency with "ok" or the
exception's class only, and answers 503 when any one is down — or, with `?need=database`
(a comma list), only when one of those is: a load balancer's check. A node without its broker
or cache still serves pages (a submission waits for the reaper to send it, the cache degrades
to none), so the proxy should not take every node out for that (docs/DEPLOY.md); a node
without its database cannot serve anything.
"""

from __future__ import annotations

import sys
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import requires_csrf_token
from kombu import Connection

from generator.api import meteron, openai
from generator.api.auth import ApiError


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    url = settings.CELERY_BROKER_URL
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}
    with Connection(url, connect_timeout=2, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)


def _cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not keep a value")
    cache.delete(key)


def _storage() -> None:
    default_storage.exists("readyz-probe")


CHECKS = {"database": _database, "broker": _broker, "cache": _cache, "storage": _storage}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    need = [n for n in request.GET.get("need", "").split(",") if n] or list(CHECKS)
    unknown = sorted(set(need) - set(CHECKS))
    if unknown:
        return JsonResponse(
            {"error": f"need names one of {', '.join(CHECKS)}; unknown: {', '.join(unknown)}"},
            status=400,
        )
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; only its class is shown
            results[name] = f"down ({type(exc).__name__})"
    ready = all(results[n] == "ok" for n in need)
    every = all(v == "ok" for v in results.values())
    status = "ok" if every else ("degraded" if ready else "down")
    return JsonResponse({"status": status, "checks": results}, status=200 if ready else 503)


UNAVAILABLE = (
    "<!doctype html><title>Easel is briefly unavailable</title><h1>Easel is briefly "
    "unavailable (503)</h1><p>It cannot reach its database just now. Try again in a moment.</p>"
)


API_UNAVAILABLE = "Easel cannot reach its database just now. Try again in a moment."


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a request that failed because the database is unreachable (a restart, a
    fail-over) is a 503 with Retry-After — the outage, not a bug — as haproxy answers while
    /readyz is red; anything else is Django's own 500. Plain HTML for pages: the error page must
    not need the database (no session, no user, no context processors); the APIs' JSON
    envelopes for theirs, so an SDK reads the error (and retries a 503) as it would its own."""
    if not isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return defaults.server_error(request)
    headers = {"Retry-After": "5"}
    for prefix, refusal in (("/v1/", openai.refusal), ("/api/", meteron.refusal)):
        if request.path.startswith(prefix):  # the dialect's own error body
            code = "database_unavailable"
            return refusal(ApiError(503, API_UNAVAILABLE, code=code, headers=headers))
    return HttpResponse(UNAVAILABLE, status=503, headers=headers)
