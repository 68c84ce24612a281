"""Meteron (app.meteron.ai): a metering/queueing proxy in front of the model servers you register.

Protocol: ../shared/providers/PROTOCOLS.md §1 and its Corrections; the whole behaviour, with
sources, in docs/providers/meteron.md. In short: POST /api/images/generations with `X-Model`,
`X-User`, `X-Async` and optional `X-Priority`; sync (`X-Async: "false"`, the images in the reply,
awaited up to 600 s) is the default as in every current example, async (`params["async"]`) an
opt-in resting on the 2023 SDK; `params["body"]` is the body template ("{image_url}" in it
becomes the photo's presigned URL), `params["output_images"]` picks the result entries; a lost
sync reply is reconciled from the listing by the id's ULID time, never guessed; a 429/402/403
naming a limit is LimitReached."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    LimitReached,
    Pending,
    Provider,
    ProviderError,
    generation_inputs,
)
from generator.providers.photos import input_photo_url, photo_urls_reachable

if TYPE_CHECKING:
    from generator.models import AIModel, Generation

logger = logging.getLogger(__name__)

LIMIT_WORDS = ("limit", "quota", "exceeded", "remaining")
MAX_PAGE_SIZE = 200
IMAGE_URL = "{image_url}"
ASYNC_NOTE = (
    "async mode rests on the older API's behaviour (the 2023 `meteron` 0.1.4 SDK: a pending "
    "reply, then polling the listing with ?id=), unverified on today's API; false (sync, the "
    "default) is what every current Meteron example sends"
)
LOCAL_DISK = (
    "Meteron fetches the photo by URL; Easel's storage is local disk, which Meteron cannot "
    "reach: set STORAGE_BACKEND=s3."
)
NO_PLACEHOLDER = (
    "Meteron forwards the body to the model server, which fetches the photo by URL: put the "
    'string "{image_url}" where the photo goes in params.body (RoomFix: '
    '{"input": {"image": "{image_url}"}}).'
)
# Reconcile: a generation is "ours" if Meteron made it within this window around the submit
# (seconds before, for clock skew between Easel and Meteron; seconds after, for the time the
# request took to arrive and be recorded). Inferred, not documented.
CLOCK_SKEW = 10.0
ARRIVAL_WINDOW = 30.0
RECONCILE_PAGES = 3
RECONCILE_PAGE_SIZE = 50
# Crockford base32, as ULIDs use. Meteron's ids are ULIDs behind a prefix: the documented
# examples (seed 001, meteron.ai/guides/storage) decode to May 2023, the project before its
# model, the output image 15 s after its generation. Inferred from those examples.
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def has_image_url(node: Any) -> bool:
    """Whether the "{image_url}" placeholder appears as a value anywhere in `node`."""
    if isinstance(node, dict):
        return any(has_image_url(v) for v in node.values())
    if isinstance(node, list):
        return any(has_image_url(v) for v in node)
    return node == IMAGE_URL


def fill_image_url(node: Any, url: str | None) -> Any:
    """`node` with every "{image_url}" value replaced by `url` (dropped when there is none)."""
    if isinstance(node, dict):
        return {
            k: fill_image_url(v, url) for k, v in node.items() if url is not None or v != IMAGE_URL
        }
    if isinstance(node, list):
        return [fill_image_url(v, url) for v in node if url is not None or v != IMAGE_URL]
    return url if node == IMAGE_URL else node


def build_body(gen: Generation, image_url: str | None = None) -> dict[str, Any]:
    """The JSON forwarded to the model server: the model's template (its "{image_url}" values
    filled before the generation's own fields go in, so a prompt is never rewritten) plus this
    generation's fields, at the top level or under `body_key`."""
    params = gen.model.params or {}
    body: dict[str, Any] = fill_image_url(copy.deepcopy(params.get("body") or {}), image_url)
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


def output_indexes(model: AIModel | None) -> list[int]:
    """The `outputImages[]` entries that are results ([] = all of them)."""
    value = (model.params or {}).get("output_images") if model is not None else None
    return [int(i) for i in value] if isinstance(value, list) else []


def item_images(item: dict[str, Any], indexes: list[int] | None = None) -> list[ImageOutput]:
    """The result images: `outputImages[i].url` for the model's indexes, or every entry (falling
    back to outputs[].url, the raw stored output) when the model names none."""
    if indexes:
        entries = [o for o in item.get("outputImages") or [] if isinstance(o, dict)]
        urls = [entries[i].get("url") for i in indexes if i < len(entries)]
        return [ImageOutput(url=url) for url in urls if url]
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


def id_time(gen_id: str) -> float | None:
    """When Meteron made a generation, from its id (`img_<ULID>`: 48-bit milliseconds in the
    first ten characters), or None when the id is not a ULID."""
    ulid = str(gen_id).rpartition("_")[2].lower()
    if len(ulid) != 26 or ulid[0] > "7" or any(c not in CROCKFORD for c in ulid):
        return None
    ms = 0
    for char in ulid[:10]:
        ms = ms * 32 + CROCKFORD.index(char)
    return ms / 1000


def created_time(item: dict[str, Any]) -> float | None:
    """A listing item's creation time: from its id, else a `createdAt` if one is ever sent."""
    seconds = id_time(str(item.get("id") or ""))
    if seconds is not None:
        return seconds
    try:
        parsed = datetime.fromisoformat(str(item.get("createdAt")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


class MeteronProvider(HttpProvider):
    name = "meteron"
    label = "Meteron"
    # The examples (python-example `generate.py`: requests.post with no timeout; RoomFix
    # `generate.ts`: fetch with none) wait as long as Meteron holds the request. Easel waits ten
    # minutes, the longest a model may run by default (AIModel.timeout_seconds, 600), which the
    # read is cut to anyway; the worker's lease is stretched to cover it.
    sync_read_timeout = 600.0

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
        }

    # --- model settings -------------------------------------------------------------------

    def photo_problem(self, model) -> str:
        if not photo_urls_reachable():
            return LOCAL_DISK
        if not has_image_url((model.params or {}).get("body")):
            return NO_PLACEHOLDER
        return ""

    def options_errors(self, model) -> list[str]:
        params = model.params or {}
        errors = []
        if "async" in params and not isinstance(params["async"], bool):
            errors.append(f"params.async must be true or false: {ASYNC_NOTE}.")
        outputs = params.get("output_images")
        if outputs is not None and (
            not isinstance(outputs, list)
            or not outputs
            or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in outputs)
            or len(set(outputs)) != len(outputs)
        ):
            errors.append(
                "params.output_images must list which outputImages[] entries are results, "
                "counting from 0, each once (RoomFix's ControlNet model answers [control map, "
                "result]: use [1])."
            )
        body = params.get("body")
        if body is not None and not isinstance(body, dict):
            errors.append("params.body must be a JSON object (the template sent to the model).")
        if "body_key" in params and not (
            isinstance(params["body_key"], str) and params["body_key"]
        ):
            errors.append('params.body_key must be the name of a key, e.g. "input".')
        if has_image_url(body) and not model.accepts_input_image:
            errors.append(
                'params.body has "{image_url}" but the model takes no input photo: set '
                "options.input_image or remove the placeholder."
            )
        return errors

    # --- errors ---------------------------------------------------------------------------

    def raise_for_response(self, response: httpx.Response) -> None:
        if response.status_code in (402, 403, 429):
            message = self.error_message(response) or ""
            if any(word in message.lower() for word in LIMIT_WORDS):
                raise LimitReached("Limit reached at the provider.")
        super().raise_for_response(response)

    # --- generating -----------------------------------------------------------------------

    def is_async(self, gen: Generation) -> bool:
        return (gen.model.params or {}).get("async") is True

    def mode(self, model) -> str:
        if (model.params or {}).get("async") is True:
            return f"Asynchronous, polling the listing: {ASYNC_NOTE}."
        return super().mode(model)

    def submit_seconds(self, gen: Generation) -> float:
        if self.is_async(gen):  # the reply comes at once; no long read, no stretched lease
            return Provider.submit_seconds(self, gen)
        return super().submit_seconds(gen)

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
        image_url = input_photo_url(gen) if gen.input_image else None
        if gen.input_image and not image_url:
            raise ProviderError(f"{LOCAL_DISK} Nothing was sent to the provider.")
        response = self.request(
            "POST",
            "/api/images/generations",
            json=build_body(gen, image_url),
            headers=self.headers_for(gen),
            timeout=self.submit_timeout(gen),
        )
        item = self.json(response, accepted=True)
        if not isinstance(item, dict):
            raise ProviderError("Meteron's reply did not describe a generation.")
        result = self.interpret(item, gen.model)
        if isinstance(result, Pending) and not result.job_id:
            raise ProviderError("Meteron accepted the request without a generation id.")
        return result

    def interpret(self, item: dict, model: AIModel | None = None) -> Done | Pending | Failed:
        status = str(item.get("status") or "").lower()
        indexes = output_indexes(model)
        images = item_images(item, indexes)
        if status == "failed":
            return Failed(f"Meteron: {item.get('reason') or 'the generation failed.'}")
        if status == "completed" or (not status and images):
            count = len(item.get("outputImages") or [])
            if indexes and count <= max(indexes):
                return Failed(
                    f"Meteron returned {count} output image(s) but the model's output_images "
                    f"setting takes entry {max(indexes)} (counting from 0): check params."
                )
            if not images:
                return Failed("Meteron finished the generation without any output image.")
            return Done(images=images)
        return Pending(job_id=str(item.get("id") or ""), progress=None, state={"status": status})

    def find(self, gen: Generation, job_id: str) -> dict[str, Any] | None:
        """One generation from the listing, filtered by the documented user and model (and the
        2023 SDK's `id`, which an API that does not know it ignores)."""
        pages = self.list_generations(
            user=gen.tag_sent, model=gen.model.remote_id, id=job_id, page_size=RECONCILE_PAGE_SIZE
        )
        for _, page in zip(range(RECONCILE_PAGES), pages, strict=False):
            for item in page:
                if item.get("id") == job_id:
                    return item
        return None

    def check(self, gen: Generation) -> Done | Pending | Failed:
        item = self.find(gen, gen.provider_job_id)
        if item is None:
            # Listings can lag behind the POST; the task's deadline bounds how long we wait.
            return Pending(job_id=gen.provider_job_id, state=gen.provider_state)
        result = self.interpret(item, gen.model)
        if isinstance(result, Pending):  # keeps what was noted (outcome_unknown, reconciled)
            result.job_id, result.state = (
                gen.provider_job_id,
                {**gen.provider_state, **result.state},
            )
        return result

    def reconcile(self, gen: Generation) -> Done | Pending | Failed | None:
        """After a lost reply: the one generation Meteron made for this user and model while
        the submit was being sent, or None (none, several, or some that cannot be dated)."""
        sent = gen.submitted_at or gen.started_at
        if sent is None:
            return None
        start, end = sent.timestamp() - CLOCK_SKEW, sent.timestamp() + ARRIVAL_WINDOW
        pages = self.list_generations(
            user=gen.tag_sent, model=gen.model.remote_id, page_size=RECONCILE_PAGE_SIZE
        )
        matches, undated = [], []
        for _, page in zip(range(RECONCILE_PAGES), pages, strict=False):
            for item in page:
                made = created_time(item)
                if made is None:
                    undated.append(str(item.get("id")))
                elif start <= made <= end:
                    matches.append(item)
        if undated or len(matches) != 1:
            found = ", ".join(str(m.get("id")) for m in matches[:5]) or "none"
            why = f"cannot date {undated[:5]}" if undated else f"made then: {found}"
            logger.warning("Meteron reconcile of %s is ambiguous (%s)", gen.public_id, why)
            return None
        result = self.interpret(matches[0], gen.model)
        if isinstance(result, Pending):
            result.state = {**(gen.provider_state or {}), **result.state, "reconciled": True}
        return result

    # --- listing, limits, connection --------------------------------------------------------

    def list_generations(
        self,
        *,
        user: str = "",
        model: str = "",
        status: str = "",
        page_size: int = MAX_PAGE_SIZE,
        **extra: str,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of generations, following nextPageToken until it is missing or empty."""
        token = ""
        seen_tokens: set[str] = set()
        while True:
            params = {
                "user": user,
                "model": model,
                "status": status,
                **extra,
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
