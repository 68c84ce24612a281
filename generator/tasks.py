"""The generation pipeline as Celery tasks.

run_generation: claim a queued row, submit it to its provider once, then either store the
images or schedule check_generation. check_generation asks the provider again with backoff
until done, failed or past the deadline — no task ever sleeps while a provider works.
reap_generations: the periodic safety net for dispatches and workers that were lost.

The queue's three entry points for the layers above: enqueue (the one way a generation is
sent to run, after the caller's transaction commits), check_soon (a webhook said the job
moved) and cancel_at_provider. retry_delay is the one retry policy for provider errors.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from generator import counters
from generator.errors import GenerationError, OutcomeUnknown, StorageError
from generator.models import AIModel, Generation
from generator.outputs import store_and_complete
from generator.providers import get_provider
from generator.providers.base import Done, Failed, Pending, Provider, ProviderError

logger = logging.getLogger(__name__)

MAX_POLL_INTERVAL = 10.0
# Seconds a worker's lease outlives the longest reply it waits for (a submit's read timeout).
LEASE_MARGIN = 60
# A worker keeps the models it read for this long at most, and only while their updated_at is
# the one the claim returned: an edit in the admin applies to the next generation, an edit
# that bypassed save() (QuerySet.update) within this many seconds.
MODEL_CACHE_SECONDS = 30.0
_models: dict[int, tuple[Any, float, AIModel]] = {}


def _attach_model(gen: Generation, version: Any) -> None:
    """gen.model from this process's cache, or read once and cached."""
    now = time.monotonic()
    hit = _models.get(gen.model_id)
    if hit is None or hit[0] != version or now - hit[1] > MODEL_CACHE_SECONDS:
        hit = (version, now, AIModel.objects.get(pk=gen.model_id))
        _models[gen.model_id] = hit
    gen.model = hit[2]


def backoff(step: int, first: float = 0.5, cap: float = MAX_POLL_INTERVAL) -> float:
    return min(cap, first * (2**step))


def _lease() -> int:
    return settings.EASEL_LEASE_SECONDS


def _deadline(gen: Generation):
    return gen.started_at + timedelta(seconds=gen.model.timeout_seconds)


def retry_delay(
    exc: GenerationError, *, retries: int, allowed: int, step: int, first: float, cap: float
) -> float | None:
    """The one retry policy: an error that says trying again may help is tried again, after
    the provider's Retry-After or an exponential backoff, while fewer than `allowed` retries
    were made; None means give up (a final error, or retries used up)."""
    if not exc.retryable or retries >= allowed:
        return None
    return exc.retry_after or backoff(step, first=first, cap=cap)


def _route(gen: Generation) -> dict[str, Any]:
    """Where a generation's messages go: its provider's queue (EASEL_PROVIDER_QUEUES) or the
    default one, with headers that name it on the worker's log lines (generator.logs)."""
    options: dict[str, Any] = {
        "headers": {"easel_generation": str(gen.public_id), "easel_provider": gen.provider}
    }
    queue = settings.EASEL_PROVIDER_QUEUES.get(gen.provider)
    if queue:
        options["queue"] = queue
    return options


def _schedule_check(gen: Generation, countdown: float, step: int = 0) -> None:
    check_generation.apply_async(
        (gen.pk, step), countdown=countdown, priority=gen.priority, **_route(gen)
    )


def enqueue(
    gen: Generation, *, countdown: float | None = None, stamped: bool = False, first: bool = False
) -> bool:
    """Send the generation to the queue; inside a transaction, once it commits (so a worker
    never sees a row, or a row without its photo, that is not there yet). A broker that is down
    is not an error for the user: the row stays `queued` and the reaper sends it later.

    `stamped`: the row was saved with dispatched_at/dispatches already set (a new submission),
    so only a failed send writes, to put them back. `first`: the user has nothing else in
    flight, so it goes one step ahead within its priority tier (least-running first: it
    overtakes another user's backlog, never a higher tier). Returns whether it was sent (always
    True when deferred to the commit)."""
    priority = max(0, gen.priority - 1) if first else gen.priority
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _send(gen, countdown, stamped, priority))
        return True
    return _send(gen, countdown, stamped, priority)


def _send(gen: Generation, countdown: float | None, stamped: bool, priority: int) -> bool:
    try:
        run_generation.apply_async((gen.pk,), countdown=countdown, priority=priority, **_route(gen))
    except Exception as exc:  # kombu raises several types when the broker is unreachable
        where = {"generation": str(gen.public_id), "provider": gen.provider}
        logger.warning("Could not dispatch generation %s: %s", gen.public_id, exc, extra=where)
        if stamped:
            gen.undo_dispatch()
        return False
    if not stamped:
        gen.record_dispatch()
    return True


def in_flight(user_id: int) -> int | None:
    """How many of the user's generations are in the task queue or running, counted up to the
    cap only (a COUNT over a LIMIT: flat however many one user has queued; 13,000 slowed every
    submission, bench/RESULTS.md); None when the fair queue is off. No lock, so two submissions
    at one instant may both take the last place; release() is exact (it locks the user)."""
    cap = settings.EASEL_USER_CONCURRENCY
    return Generation.objects.in_flight(user_id)[:cap].count() if cap else None


def has_room(count: int | None) -> bool:  # whether a user with `count` in flight may send one
    return count is None or count < settings.EASEL_USER_CONCURRENCY


def release(user_id: int) -> int:
    """The fair queue: send the user's waiting generations (highest priority tier, then oldest
    first) to the task queue while fewer than the cap are in flight. Called whenever one of
    their generations ends, and by the reaper. One user's hundred submissions so hold at most
    EASEL_USER_CONCURRENCY places in the task queue, and another user's generation waits
    behind those only. Returns how many were sent."""
    cap = settings.EASEL_USER_CONCURRENCY
    with transaction.atomic():
        Generation.lock_owner(user_id)
        busy = Generation.objects.in_flight(user_id)[:cap].count() if cap else 0
        room = cap - busy if cap else 500
        if room <= 0:
            return 0
        rows = list(
            Generation.objects.waiting(user_id).order_by("priority", "created_at", "id")[:room]
        )
        sent = Generation.mark_dispatched(rows)
        for index, gen in enumerate(sent):
            enqueue(gen, stamped=True, first=bool(cap) and busy == 0 and index == 0)
        counters.mark_waiting(user_id, Generation.objects.waiting(user_id).exists())
    return len(sent)


def _released(gen: Generation) -> None:
    """After a task: an ended generation frees a place (a cache read when nothing waits)."""
    if gen.status in Generation.FINAL and counters.has_waiting(gen.user_id):
        release(gen.user_id)


def check_soon(gen: Generation) -> None:
    """Ask the provider about a running generation now (a webhook said its job moved), after
    the caller's transaction commits."""
    pk, priority, route = gen.pk, gen.priority, _route(gen)
    transaction.on_commit(lambda: check_generation.apply_async((pk, 0), priority=priority, **route))


def cancel_at_provider(gen: Generation) -> None:
    """Ask the provider to stop the job, where its API can; best effort (the row is already
    canceled or failed in Easel)."""
    if not gen.provider_job_id:
        return
    try:
        provider = get_provider(gen.provider)
    except KeyError:
        return
    if not provider.supports_cancel:
        return
    try:
        provider.cancel(gen)
    except ProviderError as exc:
        logger.info("Cancel of %s at %s failed: %s", gen.public_id, gen.provider, exc.message)


@shared_task(acks_late=True)
def run_generation(pk: int) -> None:
    gen = Generation.claim(pk, _lease())
    if gen is None:
        return  # already claimed, finished or canceled
    try:
        _run(gen)
    finally:
        _released(gen)


def _run(gen: Generation) -> None:
    _attach_model(gen, gen.model_version)
    try:
        provider = get_provider(gen.provider)
    except KeyError:
        gen.fail(f"The provider {gen.provider!r} is not available on this server.")
        return
    try:
        problem = provider.photo_problem(gen.model) if gen.input_image else ""
        if problem:
            # A provider that would drop the photo never runs a text-only job as a redesign.
            gen.fail(f"{problem} Nothing was sent to the provider.")
            return
        seconds = provider.submit_seconds(gen)
        if seconds + LEASE_MARGIN > _lease():  # a long synchronous call outlives the lease
            gen.renew_lease(int(seconds + LEASE_MARGIN))
        result = provider.submit(gen)
    except StorageError as exc:  # Easel could not read its own copy of the photo: not sent
        gen.fail(exc.message)
        return
    except OutcomeUnknown as exc:
        _outcome_unknown(gen, provider, exc)
        return
    except ProviderError as exc:
        _submit_failed(gen, exc)
        return
    except Exception:
        logger.exception("Provider %s crashed on submit of %s", gen.provider, gen.public_id)
        gen.fail(f"{provider.label} could not be reached because of an internal error.")
        return
    _handle(gen, provider, result, step=0)


def _outcome_unknown(gen: Generation, provider: Provider, exc: OutcomeUnknown) -> None:
    """The submit may have reached the provider: never send it again. Record that (staff count
    these in the failures console), then ask the provider whether it has the job; a job it
    finds is handled like a normal reply, otherwise the generation fails with the reason (and
    fail() refunds the ledger)."""
    logger.warning("Outcome unknown for %s at %s: %s", gen.public_id, gen.provider, exc.message)
    state = {**(gen.provider_state or {}), "outcome_unknown": exc.message[:300]}
    gen.renew_lease(_lease(), provider_state=state)
    try:
        result = provider.reconcile(gen)
    except ProviderError as lookup:
        logger.info("Reconcile of %s failed: %s", gen.public_id, lookup.message)
        result = None
    except Exception:
        logger.exception("Provider %s crashed reconciling %s", gen.provider, gen.public_id)
        result = None
    if result is None:
        gen.fail(exc.message)
        return
    _handle(gen, provider, result, step=0)


def _submit_failed(gen: Generation, exc: ProviderError) -> None:
    countdown = retry_delay(
        exc,
        retries=gen.attempts - 1,
        allowed=settings.EASEL_MAX_TRANSIENT_RETRIES - 1,
        step=gen.attempts,
        first=1.0,
        cap=60.0,
    )
    if countdown is not None:
        # The provider said no (5xx, 429, unreachable): nothing was accepted, so sending it
        # again later is safe. Back to queued, dispatched again after a backoff.
        if gen.requeue(exc.message):
            enqueue(gen, countdown=countdown)
        return
    if exc.retryable:
        gen.fail(f"{exc.message} (gave up after {gen.attempts} attempts)")
    else:
        gen.fail(exc.message)


def _handle(gen: Generation, provider: Provider, result, step: int) -> None:
    if isinstance(result, Done):
        # Canceled (or deleted) while the provider worked: keeps nothing, changes nothing.
        try:
            store_and_complete(gen, result.images, provider)
        except StorageError as exc:  # Easel's own storage failed: the provider did its work
            gen.fail(exc.message, Generation.EASEL_SIDE)
        except GenerationError as exc:  # a bad output: the provider failed on its side
            gen.fail(exc.message)
    elif isinstance(result, Pending):
        countdown = result.poll_after if result.poll_after is not None else backoff(step)
        countdown = max(0.05, min(countdown, MAX_POLL_INTERVAL))
        gen.renew_lease(
            _lease() + int(countdown),
            deadline_at=gen.deadline_at or _deadline(gen),
            provider_job_id=result.job_id,
            provider_state=result.state,
            progress=result.progress,
        )
        _schedule_check(gen, countdown, step + 1)
    elif isinstance(result, Failed):
        if result.canceled:
            gen.cancel(result.reason, by_provider=True)
        else:
            gen.fail(result.reason)
    else:  # pragma: no cover - a provider bug
        gen.fail("The provider returned something Easel does not understand.")


@shared_task(acks_late=True)
def check_generation(pk: int, step: int = 0) -> None:
    gen = Generation.for_worker(pk)
    if gen is None or gen.status != Generation.Status.RUNNING:
        return
    try:
        _check(gen, step)
    finally:
        _released(gen)


def _check(gen: Generation, step: int) -> None:
    cache.delete(f"{counters.PENDING_CHECK_KEY}:{gen.pk}")  # a webhook may queue a new check
    _attach_model(gen, gen.model_version)
    provider = get_provider(gen.provider)
    if timezone.now() > (gen.deadline_at or _deadline(gen)):
        minutes = gen.model.timeout_seconds / 60
        # The provider took the job and may still finish (and bill) it: the charge is kept.
        reason = f"Timed out: the provider did not finish within {minutes:g} minutes."
        if gen.fail(reason, Generation.UNKNOWN):
            cancel_at_provider(gen)
        return
    try:
        result = provider.check(gen)
    except ProviderError as exc:
        errors = int(gen.provider_state.get("transient_errors", 0))
        countdown = retry_delay(
            exc,
            retries=errors,
            allowed=settings.EASEL_MAX_TRANSIENT_RETRIES * 2,
            step=step,
            first=0.5,
            cap=MAX_POLL_INTERVAL,
        )
        if countdown is not None:
            state = {**gen.provider_state, "transient_errors": errors + 1}
            gen.renew_lease(_lease() + int(countdown), provider_state=state)
            _schedule_check(gen, countdown, step + 1)
        else:
            gen.fail(exc.message)
        return
    except Exception:
        logger.exception("Provider %s crashed checking %s", gen.provider, gen.public_id)
        gen.fail(f"{provider.label} returned a reply Easel could not read.")
        return
    _handle(gen, provider, result, step)


@shared_task
def reap_generations() -> dict[str, int]:
    """Re-dispatch queued rows whose dispatch was lost; resolve running rows whose lease expired."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EASEL_REQUEUE_AFTER_SECONDS)
    counts = {"redispatched": 0, "rechecked": 0, "requeued": 0, "failed": 0}

    # Sent to the task queue but never started (a lost message): sent again. Waiting in the
    # fair queue (never sent): released, within each user's cap.
    lost = Generation.objects.filter(status=Generation.Status.QUEUED, dispatched_at__lt=stale)
    for gen in lost.order_by("created_at")[:500]:
        counts["redispatched"] += enqueue(gen)
    waiting_users = Generation.objects.waiting().values_list("user_id", flat=True).distinct()
    for user_id in list(waiting_users.order_by()[:500]):
        counts["redispatched"] += release(user_id)

    expired = Generation.objects.filter(status=Generation.Status.RUNNING, lease_until__lt=now)
    for gen in expired.select_related("model", "user").order_by("lease_until")[:500]:
        if gen.provider_job_id:
            # The job is known to the provider: ask it again rather than resubmit.
            if gen.renew_lease(_lease()):
                _schedule_check(gen, 0)
                counts["rechecked"] += 1
        elif gen.submitted_at is None:
            # Never sent: safe to start over.
            if gen.requeue():
                counts["requeued"] += enqueue(gen)
        else:
            # Sent, but the worker died before the provider's answer was recorded. Sending it
            # again could charge the user twice, so it ends here with the reason.
            if gen.fail(
                "The worker stopped while the request was with the provider; it was not "
                "sent again to avoid a double charge. Use Retry to try again.",
                Generation.UNKNOWN,
            ):
                counts["failed"] += 1
    if any(counts.values()):
        logger.info("Reaper: %s", counts)
    return counts
