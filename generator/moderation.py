"""Moderation before spend: a prompt is checked against the staff's block list (and, when
EASEL_MODERATION_URL is set, an OpenAI-style /v1/moderations endpoint) before anything is
charged or sent. A refusal raises PromptBlocked (a limits.LimitExceeded: the pages show the
message as a form error, the APIs answer 400) and is recorded as a FlaggedPrompt for review.
"""

from __future__ import annotations

import logging
import re

import httpx
from django.conf import settings

from generator.limits import LimitExceeded
from generator.models import AIModel, BlockedTerm, FlaggedPrompt

log = logging.getLogger(__name__)


class PromptBlocked(LimitExceeded):
    status = 400
    code = "content_policy_violation"


class ModerationUnavailable(LimitExceeded):
    status = 503
    code = "moderation_unavailable"


def _block_list_match(text: str) -> str | None:
    for term in BlockedTerm.objects.enabled():
        try:
            if term.regex().search(text):
                return str(term)
        except re.error:  # a bad pattern saved around the form's check: skip it, log it
            log.warning("moderation: blocked term %s does not compile", term.pk)
    return None


def _endpoint_categories(text: str) -> list[str]:
    """Flagged categories from an OpenAI-style moderation endpoint.

    Request/response shape per the OpenAI API reference, "Create moderation"
    (POST /v1/moderations {"model", "input"} → {"results": [{"flagged", "categories": {…}}]}).
    """
    headers = {}
    if settings.EASEL_MODERATION_API_KEY:
        headers["Authorization"] = f"Bearer {settings.EASEL_MODERATION_API_KEY}"
    try:
        response = httpx.post(
            settings.EASEL_MODERATION_URL,
            json={"model": settings.EASEL_MODERATION_MODEL, "input": text},
            headers=headers,
            timeout=settings.EASEL_PROVIDER_TIMEOUT,
        )
        response.raise_for_status()
        results = response.json()["results"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("moderation: endpoint unavailable: %s", exc)
        raise ModerationUnavailable(
            "The prompt could not be checked right now, so nothing was sent or charged. "
            "Try again in a minute."
        ) from exc
    flagged = []
    for result in results:
        if result.get("flagged"):
            cats = [k for k, v in (result.get("categories") or {}).items() if v]
            flagged.extend(cats or ["flagged"])
    return flagged


def check(user, model: AIModel, prompt: str, negative_prompt: str = "") -> None:
    """Raise PromptBlocked if the prompt may not be sent; records a FlaggedPrompt when so."""
    text = f"{prompt}\n{negative_prompt}".strip()
    matched = _block_list_match(text)
    source = FlaggedPrompt.Source.BLOCK_LIST
    if matched is None and settings.EASEL_MODERATION_URL:
        categories = _endpoint_categories(text)
        if categories:
            matched, source = ", ".join(sorted(set(categories))), FlaggedPrompt.Source.MODERATION
    if matched is None:
        return
    FlaggedPrompt.objects.create(
        user=user, model=model, prompt=prompt[:5000], source=source, matched=matched[:300]
    )
    raise PromptBlocked(
        "This prompt can't be used: it matches the site's content rules. Nothing was sent or "
        "charged. Change the prompt and try again."
    )
