"""What a provider says is left for a user today (Meteron's `remaining`), off the request path.

A page only reads the cache (`cached`); on a miss it asks for `refresh` to run in a worker and
shows nothing for now, so a provider that hangs never slows a page (it used to add up to the
lookup's timeout to the prompt page). The answer, or None when the provider cannot tell, is kept
PROVIDER_REMAINING_TTL seconds.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.cache import cache

from generator import providers
from generator.counters import PROVIDER_REMAINING_KEY, PROVIDER_REMAINING_TTL
from generator.models import AIModel

logger = logging.getLogger(__name__)
MISSING = object()


def reports_remaining(model: AIModel) -> bool:
    cls = providers.get_provider_class(model.provider)
    return cls is not None and callable(getattr(cls, "remaining", None))


def _key(user, model: AIModel) -> str:
    return f"{PROVIDER_REMAINING_KEY}:{model.provider}:{model.remote_id}:{model.tag_for(user)}"


def cached(user, model: AIModel):
    """The kept answer (an int or None), or MISSING when none is kept."""
    hit = cache.get(_key(user, model))
    return hit[0] if hit is not None else MISSING


def claim_refresh(user, model: AIModel) -> bool:
    """True for the one page view that should ask for a refresh (others within 30 s do not)."""
    return cache.add(f"{_key(user, model)}:asked", 1, 30)


def refresh(user, model: AIModel) -> int | None:
    """Ask the provider now (a worker does this) and keep the answer."""
    cls = providers.get_provider_class(model.provider)
    try:
        value = cls().remaining(model.tag_for(user), model.remote_id) if cls else None
    except Exception:  # best effort: a provider that did not answer is "unknown"
        logger.info("Remaining for %s at %s unknown", model.slug, model.provider, exc_info=True)
        value = None
    value = _today(value)
    cache.set(_key(user, model), (value,), PROVIDER_REMAINING_TTL)
    return value


@shared_task(ignore_result=True)
def refresh_remaining(model_id: int, user_id: int) -> None:
    """`refresh` in a worker (registered through generator.tasks, which imports this module)."""
    model = AIModel.objects.filter(pk=model_id).first()
    user = get_user_model().objects.filter(pk=user_id).first()
    if model is not None and user is not None:
        refresh(user, model)


def _today(value) -> int | None:
    if isinstance(value, dict):
        for key in ("remaining", "left", "generations"):
            if isinstance(value.get(key), int):
                return value[key]
        return None
    return value if isinstance(value, int) else None
