"""Operations that span a form, the database and the task queue: one path each, for the web
pages, the staff console and the commands alike (saleor's "actions" shape).

- submit: check limits, save, charge the ledger, enqueue after commit.
- rerun: a new generation with another's settings (the user's Re-run/Retry and staff Retry).
- cancel: stop a generation in Easel and at its provider (the user, staff, Delete, deactivation).
- deactivate_users, usage_summary: what the admin's user pages do.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from generator import budget, counters, limits, moderation
from generator.models import AIModel, Generation, UsageEntry, costs
from generator.models.validation import settings_errors
from generator.storage import delete_files
from generator.tasks import cancel_at_provider, enqueue, has_room, in_flight, release

logger = logging.getLogger(__name__)


def submit(
    user, data: dict, *, parent: Generation | None = None, enforce_limits: bool = True
) -> tuple[Generation, bool]:
    """Save a queued generation and dispatch it after the transaction commits.

    Returns (generation, created). A repeated idempotency key (a double-click) returns the
    generation the first click created. Over a limit raises limits.LimitExceeded and nothing
    is saved or sent; every accepted generation is charged in the usage ledger.
    """
    model: AIModel = data["model"]
    key = data.get("idempotency_key") or ""
    seed = data.get("seed")
    if seed is None and model.supports_seed:
        seed = secrets.randbelow(2**32)  # recorded, so the image can be made again
    now = timezone.now()
    gen = Generation(
        user=user,
        model=model,
        provider=model.provider,
        prompt=data["prompt"],
        negative_prompt=data.get("negative_prompt") or "",
        options=data.get("options") or {},
        seed=seed,
        num_images=data.get("num_images") or 1,
        idempotency_key=key,
        tag_sent=model.tag_for(user),
        priority=user.priority_for(data.get("priority")),
        via_api=bool(data.get("via_api")),
        parent=parent,
        created_at=now,
        # Sent right after the commit: stamped now instead of a second write after the send
        # (a failed send puts these back; a send lost in between is re-sent by the reaper).
        dispatched_at=now,
        dispatches=1,
    )
    if data.get("input_image"):
        # Saved to storage when the row is saved: a double-click must not store a second copy.
        existing = _existing(user, key)
        if existing:
            return existing, False
        gen.input_image = data["input_image"]
    # Moderation before spend: a blocked prompt is refused before any lock, charge or send.
    moderation.check(user, model, gen.prompt, gen.negative_prompt)
    cost = costs.cost_of(gen)
    try:
        with transaction.atomic():
            # Where a limit applies this locks the user's row, so concurrent submissions are
            # checked and charged one by one.
            limits.lock_and_check(user, model, gen.num_images, enforce=enforce_limits)
            budget.lock_and_check(user, cost, enforce=enforce_limits)
            busy = in_flight(user.pk)
            sent = has_room(busy)
            if not sent:  # the fair queue: it waits in Easel until one of theirs ends
                gen.dispatched_at, gen.dispatches = None, 0
            # A repeated key (a double-click) fails the unique constraint: no look-up first.
            gen.save()
            UsageEntry.objects.charge(gen, cost)
            if sent:
                enqueue(gen, stamped=True, first=busy == 0)
            else:
                counters.mark_waiting(user.pk)
    except limits.LimitExceeded:
        # The first click may have used the last image: the second still gets its generation.
        existing = _existing(user, key)
        if existing:
            return existing, False
        raise
    except IntegrityError:
        if gen.input_image:
            # The other click's row won the race and holds its own copy: this one's goes.
            delete_files([gen.input_image.name])
        existing = _existing(user, key)
        if existing:
            return existing, False
        raise
    return gen, True


def _existing(user, key: str) -> Generation | None:
    if not key:
        return None
    return Generation.objects.filter(user=user, idempotency_key=key).first()


class RerunRefused(Exception):
    """A re-run that cannot be made (the model was disabled); the message is for the user."""


def rerun(
    gen: Generation, *, new_seed: bool, by_staff: bool = False, token: str = ""
) -> tuple[Generation, bool]:
    """A new queued generation with `gen`'s settings and `parent=gen`, charged like any other.
    Returns (generation, created).

    Re-run (`new_seed=True`) makes a variant; Retry (`new_seed=False`) repeats a failed or
    canceled one exactly. Both are idempotent: a Retry is made once per generation, a Re-run
    once per `token` (the page's form carries one), so five clicks make one generation. Both
    are checked against the model's options as they are today, like the prompt form.
    Staff (`by_staff`) retry past the user's limits and a disabled model: they decided to.
    The input image is copied before the row is saved and sent, so the worker always sees
    the photo and deleting one generation never breaks the other.
    """
    model = gen.model
    if not model.enabled and not by_staff:
        raise RerunRefused(f"{model.name} is not available any more.")
    if not new_seed and gen.status not in (Generation.Status.FAILED, Generation.Status.CANCELED):
        raise RerunRefused(
            "Only a failed or canceled generation can be retried; use Re-run for a variant."
        )
    if gen.images_expired_at and model.accepts_input_image and not gen.input_image:
        raise RerunRefused(
            f"The photo this started from was removed on {gen.images_expired_at:%d %b %Y} "
            "(image retention). Use Reuse settings and upload it again."
        )
    problems = settings_errors(
        model,
        prompt=gen.prompt,
        options=gen.options or {},
        num_images=gen.num_images,
        negative_prompt=gen.negative_prompt,
        seed_given=False,
        has_photo=bool(gen.input_image),
    )
    if problems:
        raise RerunRefused(
            f"{model.name} has changed since this was made: {' '.join(problems.values())} "
            "Use Reuse settings to pick new ones."
        )
    kind = "rerun" if new_seed else "retry"
    key = f"{kind}-{hashlib.sha256(f'{gen.public_id}:{token}'.encode()).hexdigest()[:40]}"
    existing = _existing(gen.user, key)
    if existing:
        return existing, False
    data = {
        "model": model,
        "prompt": gen.prompt,
        "negative_prompt": gen.negative_prompt,
        "options": dict(gen.options or {}),
        "seed": None if new_seed else gen.seed,
        "num_images": gen.num_images,
        "idempotency_key": key if (token or not new_seed) else "",
    }
    if gen.input_image:
        with gen.input_image.open("rb") as handle:
            data["input_image"] = ContentFile(
                handle.read(), name=gen.input_image.name.rsplit("/", 1)[-1]
            )
    return submit(gen.user, data, parent=gen, enforce_limits=not by_staff)


def cancel(gen: Generation, reason: str) -> bool:
    """queued/running → canceled, then ask the provider to stop where it can. Refunded only
    if the provider had not been sent it (Generation.cancel); False if it had already
    finished."""
    if not gen.cancel(reason):
        return False
    cancel_at_provider(gen)
    release(gen.user_id)
    return True


def deactivate_users(queryset) -> tuple[int, int]:
    """Deactivate these users and cancel what they have queued or running.
    Returns (users, generations canceled)."""
    users = list(queryset)
    canceled = 0
    for user in users:
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        for gen in Generation.objects.for_user(user).active().select_related("model"):
            canceled += cancel(gen, "Canceled: the account was deactivated.")
    return len(users), canceled


def usage_summary(user) -> list[limits.Allowance]:
    """Per model: limits, what is used and left now (for the user's admin page)."""
    model_ids = set(user.usage_entries.values_list("model_id", flat=True)) | set(
        AIModel.objects.enabled().values_list("id", flat=True)
    )
    return [limits.allowance(user, m) for m in AIModel.objects.filter(id__in=model_ids)]
