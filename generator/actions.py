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


def tag_for(user, model: AIModel) -> str:
    """What the provider sees as the user: the stable public id unless staff chose the e-mail."""
    if model.tag_with == AIModel.TagWith.EMAIL:
        return user.email
    return user.public_id


def dispatch(gen: Generation) -> bool:
    """Send the generation to the queue. A broker that is down is not an error for the user:
    the row stays `queued` and the reaper dispatches it when the broker is back."""
    from generator.tasks import run_generation

    try:
        run_generation.apply_async((gen.pk,), priority=gen.priority)
    except Exception as exc:  # kombu raises several types when the broker is unreachable
        logger.warning("Could not dispatch generation %s: %s", gen.public_id, exc)
        return False
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
    if key:
        existing = Generation.objects.filter(user=user, idempotency_key=key).first()
        if existing:
            return existing, False
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
        tag_sent=tag_for(user, model),
        priority=user.celery_priority,
        parent=parent,
    )
    if data.get("input_image"):
        # Saved to storage by the FileField when the row is saved.
        gen.input_image = data["input_image"]
    try:
        with transaction.atomic():
            # Locks the user's row: concurrent submissions are checked and charged one by one.
            limits.check_and_charge(user, model, gen.num_images, enforce=enforce_limits)
            if key:
                existing = Generation.objects.filter(user=user, idempotency_key=key).first()
                if existing:
                    return existing, False
            gen.save()
            limits.charge(gen)
            transaction.on_commit(lambda: dispatch(gen))
    except IntegrityError:
        existing = Generation.objects.filter(user=user, idempotency_key=key).first()
        if existing:
            return existing, False
        raise
    return gen, True


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
