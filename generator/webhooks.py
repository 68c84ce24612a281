"""Inbound provider webhooks: `POST /webhooks/<provider>/`.

A webhook never changes a generation by itself. The provider verifies it first
(`Provider.webhook_job_id`: Replicate's HMAC signature; Artificial Studio signs nothing, so only
its id is taken and the truth is re-fetched from its API), then the view finds the generation by
(provider, provider_job_id) and runs `check_generation` at once — the same completion path as
polling, so a webhook and a poll racing each other, or a provider delivering twice, store the
images once. Duplicates and webhooks for finished rows answer 2xx so providers stop retrying.
"""

from __future__ import annotations

import json
import logging

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generator import tasks
from generator.counters import PENDING_CHECK_KEY, PENDING_CHECK_TTL
from generator.models import Generation
from generator.providers import get_provider_class

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_JOB_ID_LENGTH = 200


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ok": 200 <= status < 300, "detail": message}, status=status)


@csrf_exempt
@require_POST
def receive(request: HttpRequest, provider: str) -> JsonResponse:
    cls = get_provider_class(provider)
    if cls is None or not cls.supports_webhooks:
        return _answer(404, "No webhooks for this provider.")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _answer(413, "Body too large.")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return _answer(413, "Body too large.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _answer(400, "Body is not JSON.")
    except RecursionError:  # 1 KB of `[[[[…` is valid JSON nested past the parser's stack
        return _answer(400, "Body is nested too deeply.")
    if not isinstance(payload, dict):
        return _answer(400, "Body is not a JSON object.")
    job_id = cls().webhook_job_id(request)
    if not job_id:
        logger.warning("Refused a %s webhook that failed verification", provider)
        return _answer(401, "Webhook verification failed.")
    if not isinstance(job_id, str) or "\x00" in job_id or len(job_id) > MAX_JOB_ID_LENGTH:
        # PostgreSQL refuses NUL in a query (a 500 before); no provider issues such an id.
        return _answer(404, "Unknown job.")
    gen = Generation.objects.filter(provider=provider, provider_job_id=job_id).first()
    if gen is None:
        return _answer(404, "Unknown job.")
    if gen.status == Generation.Status.RUNNING:
        # A burst of webhooks for one job (100 in 0.3 s) queues one check: another is queued
        # only once that one has started (tasks.check_generation clears the mark).
        if _first_pending_check(gen):
            tasks.check_soon(gen)
        return _answer(202, "Checking now.")
    return _answer(200, f"Already {gen.status}.")


def _first_pending_check(gen: Generation) -> bool:
    # With the cache down (config/cache.py answers add() with False) no check is queued: the
    # generation's own polls, at most MAX_POLL_INTERVAL apart, still find the job's end.
    return cache.add(f"{PENDING_CHECK_KEY}:{gen.pk}", 1, PENDING_CHECK_TTL)
