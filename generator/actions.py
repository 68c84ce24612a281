"""Operations that span a form, the database and the task queue."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from generator import limits
from generator.models import AIModel, Generation

logger = logging.getLogger(__name__)


def dispatch(gen: Generation, *, stamped: bool = False) -> bool:
    """Send the generation to the queue. A broker that is down is not an error for the user:
    the row stays `queued` and the reaper dispatches it when the broker is back.

    `stamped`: the row was saved with dispatched_at/dispatches already set (a new submission,
    sent right after its commit), so only a failed send writes, to put them back."""
    from generator.tasks import run_generation

    try:
        run_generation.apply_async((gen.pk,), priority=gen.priority)
    except Exception as exc:  # kombu raises several types when the broker is unreachable
        logger.warning("Could not dispatch generation %s: %s", gen.public_id, exc)
        if stamped:
            Generation.objects.filter(pk=gen.pk, dispatches=gen.dispatches).update(
                dispatched_at=None, dispatches=gen.dispatches - 1
            )
        return False
    if not stamped:
        Generation.objects.filter(pk=gen.pk).update(
            dispatched_at=timezone.now(), dispatches=gen.dispatches + 1
        )
    return True


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
        priority=user.celery_priority,
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
    try:
        with transaction.atomic():
            # Where a limit applies this locks the user's row, so concurrent submissions are
            # checked and charged one by one.
            limits.check_and_charge(user, model, gen.num_images, enforce=enforce_limits)
            # A repeated key (a double-click) fails the unique constraint: no look-up first.
            gen.save()
            limits.charge(gen)
            transaction.on_commit(lambda: dispatch(gen, stamped=True))
    except limits.LimitExceeded:
        # The first click may have used the last image: the second still gets its generation.
        existing = _existing(user, key)
        if existing:
            return existing, False
        raise
    except IntegrityError:
        existing = _existing(user, key)
        if existing:
            return existing, False
        raise
    return gen, True


def _existing(user, key: str) -> Generation | None:
    if not key:
        return None
    return Generation.objects.filter(user=user, idempotency_key=key).first()


def lease_seconds() -> int:
    return settings.EASEL_LEASE_SECONDS


class RerunRefused(Exception):
    """A re-run that cannot be made (the model was disabled); the message is for the user."""


def rerun(gen: Generation, *, new_seed: bool) -> Generation:
    """A new queued generation with `gen`'s settings and `parent=gen`.

    Re-run (`new_seed=True`) makes a variant; Retry (`new_seed=False`) repeats it exactly.
    The input image is copied, so deleting one generation never breaks the other.
    """
    from django.core.files.base import ContentFile

    model = gen.model
    if not model.enabled:
        raise RerunRefused(f"{model.name} is not available any more.")
    data = {
        "model": model,
        "prompt": gen.prompt,
        "negative_prompt": gen.negative_prompt,
        "options": dict(gen.options or {}),
        "seed": None if new_seed else gen.seed,
        "num_images": gen.num_images,
    }
    if gen.input_image:
        with gen.input_image.open("rb") as handle:
            data["input_image"] = ContentFile(
                handle.read(), name=gen.input_image.name.rsplit("/", 1)[-1]
            )
    new, _ = submit(gen.user, data, parent=gen)
    return new
