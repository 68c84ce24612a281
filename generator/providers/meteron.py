"""Meteron (app.meteron.ai): a metering/queueing proxy in front of the model servers you register.

Protocol (see ../shared/providers/PROTOCOLS.md §1):
- POST /api/images/generations, `Authorization: Bearer KEY`, `X-Model` (AIModel.remote_id),
  `X-User` (the tag Easel recorded in gen.tag_sent), `X-Async` and optional `X-Priority`.
- The body is opaque to Meteron and forwarded to the model's server, so Easel builds it from
  `params["body"]` (a template, e.g. {"version": "…"}) merged with the generation's fields.
  `params["body_key"]` nests those fields one level down (e.g. "input" for Lightning SDXL or
  Replicate-backed models: {"input": {"prompt": …}}).
- Sync mode (`params["async"] = false`) answers with the finished generation; async mode
  (the default here, so no worker waits) answers `pending` and Easel polls by listing with
  `?id=` — no GET-by-id endpoint is documented.
- Outputs are presigned R2 URLs serving image bytes or the model server's raw JSON with a data
  URI; generator.outputs handles both.
- How an exceeded per-user limit is signalled is undocumented: a 429/402/403 whose message
  mentions a limit or quota becomes LimitReached (final, "Limit reached at the provider."); any
  other 429 is an ordinary, retried rate limit.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    LimitReached,
    Pending,
    ProviderError,
    generation_inputs,
)

if TYPE_CHECKING:
    from generator.models import Generation

logger = logging.getLogger(__name__)

PENDING_STATUSES = {"pending", "processing", "queued", "running"}
LIMIT_WORDS = ("limit", "quota", "exceeded", "remaining")
MAX_PAGE_SIZE = 200


def build_body(gen: Generation) -> dict[str, Any]:
    """The JSON forwarded to the model server: the model's template plus this generation."""
    params = gen.model.params or {}
    body: dict[str, Any] = copy.deepcopy(params.get("body") or {})
    fields = generation_inputs(gen)
    num_images = fields.pop("num_images")
    if num_images > 1:
        fields["num_outputs"] = num_images
    key = params.get("body_key")
    if key:
        nested = body.get(key) if isinstance(body.get(key), dict) else {}
        body[key] = {**nested, **fields}
    else:
        body.update(fields)
    return body


def item_images(item: dict[str, Any]) -> list[ImageOutput]:
    """outputImages[].url (current API), falling back to outputs[].url (raw stored output)."""
    for key in ("outputImages", "outputs"):
        urls = [o.get("url") for o in item.get(key) or [] if isinstance(o, dict) and o.get("url")]
        if urls:
            return [ImageOutput(url=url) for url in urls]
    return []


def list_items(body: Any) -> list[dict[str, Any]]:
    """The current API wraps items in `results`; the 0.1.4 SDK saw a bare array."""
    if isinstance(body, list):
        return [i for i in body if isinstance(i, dict)]
    if isinstance(body, dict):
        return [i for i in body.get("results") or [] if isinstance(i, dict)]
    return []


class MeteronProvider(HttpProvider):
    name = "meteron"
    label = "Meteron"

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
        }

    # --- errors ---------------------------------------------------------------------------

    def raise_for_response(self, response: httpx.Response) -> None:
        if response.status_code in (402, 403, 429):
            message = self.error_message(response) or ""
            if any(word in message.lower() for word in LIMIT_WORDS):
                raise LimitReached("Limit reached at the provider.")
        super().raise_for_response(response)

    # --- generating -----------------------------------------------------------------------

    def is_async(self, gen: Generation) -> bool:
        return bool((gen.model.params or {}).get("async", True))

    def headers_for(self, gen: Generation) -> dict[str, str]:
        headers = {
            "X-Model": gen.model.remote_id,
            "X-Async": "true" if self.is_async(gen) else "false",
        }
        if gen.tag_sent:
            headers["X-User"] = gen.tag_sent
        priority = getattr(gen.user, "priority", "")
        if priority in ("low", "medium", "high") and (gen.model.params or {}).get("priority", True):
            headers["X-Priority"] = priority
        return headers

    def submit(self, gen: Generation) -> Done | Pending | Failed:
        response = self.request(
            "POST", "/api/images/generations", json=build_body(gen), headers=self.headers_for(gen)
        )
        item = self.json(response, accepted=True)
        if not isinstance(item, dict):
            raise ProviderError("Meteron's reply did not describe a generation.")
        result = self.interpret(item)
        if isinstance(result, Pending) and not result.job_id:
            raise ProviderError("Meteron accepted the request without a generation id.")
        return result

    def interpret(self, item: dict[str, Any]) -> Done | Pending | Failed:
        status = str(item.get("status") or "").lower()
        images = item_images(item)
        if status == "failed":
            return Failed(f"Meteron: {item.get('reason') or 'the generation failed.'}")
        if status == "completed" or (not status and images):
            if not images:
                return Failed("Meteron finished the generation without any output image.")
            return Done(images=images)
        return Pending(job_id=str(item.get("id") or ""), progress=None, state={"status": status})

    def check(self, gen: Generation) -> Done | Pending | Failed:
        response = self.request(
            "GET", "/api/images/generations", params={"id": gen.provider_job_id}
        )
        items = [i for i in list_items(self.json(response)) if i.get("id") == gen.provider_job_id]
        if not items:
            # Listings can lag behind the POST; the task's deadline bounds how long we wait.
            return Pending(job_id=gen.provider_job_id, state=gen.provider_state)
        result = self.interpret(items[0])
        if isinstance(result, Pending):
            result.job_id = gen.provider_job_id
        return result

    # --- listing, limits, connection --------------------------------------------------------

    def list_generations(
        self,
        *,
        user: str = "",
        model: str = "",
        status: str = "",
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of generations, following nextPageToken until it is missing or empty."""
        token = ""
        seen_tokens: set[str] = set()
        while True:
            params = {
                "user": user,
                "model": model,
                "status": status,
                "pageSize": min(page_size, MAX_PAGE_SIZE),
                "pageToken": token,
            }
            body = self.json(self.request("GET", "/api/images/generations", params=params))
            yield list_items(body)
            pagination = body.get("pagination") if isinstance(body, dict) else None
            token = (pagination or {}).get("nextPageToken") or ""
            if not token or token in seen_tokens:  # a repeated token would loop forever
                return
            seen_tokens.add(token)

    def remaining(self, user_tag: str, model_remote_id: str) -> dict[str, Any] | None:
        """{"remaining": today, "remainingThisMonth": …} for one user and model, or None when
        Meteron has no limit to report (404, no JSON object) or cannot be asked."""
        try:
            response = self.request(
                "GET",
                "/api/remaining/generations",
                params={"user": user_tag, "model": model_remote_id},
                timeout=5.0,  # shown on the prompt page: never hold the page for long
            )
            body = self.json(response)
        except ProviderError as exc:
            logger.info("Meteron remaining for %s/%s unknown: %s", user_tag, model_remote_id, exc)
            return None
        return body if isinstance(body, dict) else None

    def check_connection(self) -> str:
        body = self.json(
            self.request("GET", "/api/images/generations", params={"pageSize": 1, "pageToken": ""})
        )
        if not isinstance(body, (dict, list)):
            raise ProviderError("Meteron answered, but not with a generation listing.")
        return f"Connected to Meteron at {httpx.URL(self.base_url).host}; the API key was accepted."
