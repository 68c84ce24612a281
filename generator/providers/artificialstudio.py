"""Artificial Studio.

The raw API key goes in `Authorization` (no "Bearer"). `POST /api/run {"tool": "create-image",
"input": {...}, "webhook"}` starts a job and answers its `id` (the legacy `POST /api/generate
{"model", "input", "webhook"}` answers `_id`; chosen with `params.legacy`). Easel polls
`GET /api/generations/{id}` with backoff; its success webhook is unsigned, so the webhook only
names the job and the truth is always re-fetched from the API before anything changes.
Artificial Studio has no user field: the tag stays in Easel's records (Generation.tag_sent).

The input photo (RoomFix, issue 15) goes to a tool that takes an image, such as `edit-image`,
whose models take `input.image_urls: string[]` (docs.artificialstudio.ai/image/qwen-image-2-edit,
/image/seedream-4-5-edit, /image/nano-banana-2-edit). The API takes URLs only, so Easel's stored
copy is first uploaded with the files API: `POST /api/files?transient=true`, the raw bytes with
`Content-Type` and `X-Filename`, answering `{id, url, mimetype, size, originalName}`; the `url`
goes into the tool's image field (github Artificial-Studio/n8n-nodes-artificialstudio
`GenericFunctions.ts` uploadBinary; `ArtificialStudio.node.ts` buildRunBody puts it in a list
when the field is an array or ends in `_urls`, else as a string). This works on local disk too,
where Easel has no URL of its own a provider could fetch.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from generator.providers import photos
from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    OutcomeUnknown,
    Pending,
    ProviderError,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

PROGRESS = {"pending": 0.05, "processing": 0.4, "uploading": 0.9}
WEBHOOK_SOURCE = "artificial-studio"
DEFAULT_TOOL = "create-image"
# The tools whose documented input takes the photo, and the field (docs.artificialstudio.ai
# edit-image model pages: "input.image_urls string[] Yes"). Another tool that takes an image
# is named with params.tool and params.image_field.
IMAGE_FIELDS = {"edit-image": "image_urls"}


def is_list_field(name: str) -> bool:
    """The n8n node's rule for a media field: a list when its name ends in `_urls`."""
    return name.endswith("_urls")


class ArtificialStudioProvider(HttpProvider):
    name = "artificialstudio"
    label = "Artificial Studio"
    supports_webhooks = True
    # {"message", "errors": [{"field", "message"}]} (strict validation lists every field).
    message_keys = ("message", *HttpProvider.message_keys)
    field_errors = ("errors", "field", "message")
    # The errors page says what to do per 5xx: 500 and 502 "Retry after a few seconds", 503
    # "Service is temporarily down, retry later" (docs.artificialstudio.ai/api/errors). Any
    # other 5xx to POST /api/run (504 …) may come after the job started: never re-sent.
    post_retry_statuses = frozenset({500, 502, 503})

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key}

    def _path(self, path: str) -> str:
        return path if self.base_url.endswith("/api") else f"/api{path}"

    @staticmethod
    def tool(model) -> str:
        return (model.params or {}).get("tool") or DEFAULT_TOOL

    def image_field(self, model) -> str:
        """The tool input that takes the photo ("" = none): params.image_field, else the
        field the docs give for the tool."""
        params = model.params or {}
        if params.get("legacy"):
            return ""
        return params.get("image_field") or IMAGE_FIELDS.get(self.tool(model), "")

    def photo_problem(self, model) -> str:
        if (model.params or {}).get("legacy"):
            return (
                "Artificial Studio's legacy /api/generate has no documented image input; "
                "drop params.legacy and set params.tool to an image tool such as edit-image."
            )
        if self.image_field(model):
            return ""
        return (
            f"Artificial Studio's {self.tool(model)} tool takes no image; set params.tool to "
            "an image tool such as edit-image (its photo field, image_urls, is then used), or "
            "name the tool's image field in params.image_field."
        )

    def options_errors(self, model) -> list[str]:
        params = model.params or {}
        errors = []
        for key in ("tool", "image_field"):
            if key in params and (not isinstance(params[key], str) or not params[key]):
                errors.append(f"params.{key} must be a non-empty string.")
        if errors:
            return errors
        if not model.accepts_input_image and self.tool(model) in IMAGE_FIELDS:
            errors.append(
                f"Artificial Studio's {self.tool(model)} tool needs an image: turn on the "
                "input_image option so users upload the photo it works on."
            )
        return errors

    def job_input(self, gen) -> dict[str, Any]:
        params = gen.model.params or {}
        data: dict[str, Any] = {}
        if gen.model.remote_id and not params.get("legacy"):
            data["model"] = gen.model.remote_id
        data["prompt"] = gen.prompt
        options = gen.options or {}
        # Artificial Studio names sizes ("landscape_16_9"); staff map Easel's choices to them.
        size_names = params.get("image_size_for") or {}
        key = options.get("aspect_ratio") or options.get("size")
        if key and key in size_names:
            data["image_size"] = size_names[key]
        data.update(params.get("input") or {})
        return data

    def upload_photo(self, gen) -> str | None:
        """Easel's stored copy of the photo, uploaded with the files API; its URL (None: the
        generation has no photo). An upload starts no paid work (credits are charged per
        /api/run, per the docs' per-model "Credits"), so a lost reply here is safe to retry:
        at worst a second transient file; the job itself has not been sent."""
        photo = photos.input_photo(gen)
        if photo is None:
            return None
        # Header values must be plain ASCII (the n8n node does the same).
        filename = re.sub(r"[^\x20-\x7e]", "_", photo.name) or "photo"
        try:
            response = self.request(
                "POST",
                self._path("/files"),
                params={"transient": "true"},
                content=photo.data,
                headers={"Content-Type": photo.content_type, "X-Filename": filename},
            )
        except OutcomeUnknown:
            raise ProviderError(
                "The photo upload to Artificial Studio got no answer; no job was started, so "
                "it is tried again.",
                retryable=True,
            ) from None
        reply = self.json(response)
        url = reply.get("url") if isinstance(reply, dict) else None
        if not isinstance(url, str) or not url:
            raise ProviderError(
                "Artificial Studio's file upload answered without a URL; no job was started.",
                retryable=False,
            )
        return url

    def submit(self, gen) -> Pending:
        params = gen.model.params or {}
        if params.get("legacy"):
            path = self._path("/generate")
            body: dict[str, Any] = {"model": gen.model.remote_id, "input": self.job_input(gen)}
        else:
            path = self._path("/run")
            body = {"tool": self.tool(gen.model), "input": self.job_input(gen)}
            url = self.upload_photo(gen) if gen.input_image else None
            if url:
                field = self.image_field(gen.model)
                body["input"][field] = [url] if is_list_field(field) else url
        webhook = self.webhook_url()
        if webhook:
            body["webhook"] = webhook
        reply = self.json(self.request("POST", path, json=body), accepted=True)
        job_id = (reply.get("id") or reply.get("_id")) if isinstance(reply, dict) else None
        if not job_id:
            raise ProviderError("Artificial Studio answered without a job id.", retryable=False)
        status = reply.get("status") or "pending"
        return Pending(
            job_id=str(job_id), progress=PROGRESS.get(status, 0.05), state={"status": status}
        )

    def check(self, gen) -> Done | Pending | Failed:
        reply = self.json(self.request("GET", self._path(f"/generations/{gen.provider_job_id}")))
        if not isinstance(reply, dict):
            raise ProviderError("Artificial Studio sent an unreadable generation.", retryable=True)
        status = reply.get("status")
        if status == "success":
            output = reply.get("output")
            urls = output if isinstance(output, list) else [output]
            return Done(images=[ImageOutput(url=u) for u in urls if isinstance(u, str) and u])
        if status == "error":
            return Failed(f"Artificial Studio: {reply.get('error') or 'the generation failed.'}")
        if status in PROGRESS:
            return Pending(
                job_id=gen.provider_job_id, progress=PROGRESS[status], state={"status": status}
            )
        raise ProviderError(f"Artificial Studio reported an unknown status {status!r}.")

    def raise_for_response(self, response) -> None:
        if response.status_code == 402:
            raise ProviderError(
                "Artificial Studio refused the job: the account has run out of credits.",
                retryable=False,
            )
        super().raise_for_response(response)

    def check_connection(self) -> str:
        account = self.json(self.request("GET", self._path("/account")))
        credits = account.get("credits") if isinstance(account, dict) else None
        return (
            f"Connected to Artificial Studio ({credits} credits left)."
            if credits is not None
            else "Connected to Artificial Studio."
        )

    def webhook_job_id(self, request: HttpRequest) -> str | None:
        # Unsigned: the header only filters noise. Trust comes from check_generation re-fetching
        # GET /api/generations/{id} with our key; the body's status and output are never used.
        if request.headers.get("X-Webhook-Source") != WEBHOOK_SOURCE:
            return None
        job_id = request.headers.get("X-Media-Id")
        if not job_id:
            try:
                body = json.loads(request.body)
            except ValueError:
                return None
            if isinstance(body, dict):
                job_id = body.get("id") or body.get("_id")
        return str(job_id) if job_id else None
