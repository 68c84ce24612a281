"""Artificial Studio.

The raw API key goes in `Authorization` (no "Bearer"). `POST /api/run {"tool": "create-image",
"input": {...}, "webhook"}` starts a job and answers its `id` (the legacy `POST /api/generate
{"model", "input", "webhook"}` answers `_id`; chosen with `params.legacy`). Easel polls
`GET /api/generations/{id}` with backoff; its success webhook is unsigned, so the webhook only
names the job and the truth is always re-fetched from the API before anything changes.
Artificial Studio has no user field: the tag stays in Easel's records (Generation.tag_sent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    Pending,
    ProviderError,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

PROGRESS = {"pending": 0.05, "processing": 0.4, "uploading": 0.9}
WEBHOOK_SOURCE = "artificial-studio"


class ArtificialStudioProvider(HttpProvider):
    name = "artificialstudio"
    label = "Artificial Studio"
    supports_webhooks = True
    # {"message", "errors": [{"field", "message"}]} (strict validation lists every field).
    message_keys = ("message", *HttpProvider.message_keys)
    field_errors = ("errors", "field", "message")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key}

    def _path(self, path: str) -> str:
        return path if self.base_url.endswith("/api") else f"/api{path}"

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

    def submit(self, gen) -> Pending:
        params = gen.model.params or {}
        if params.get("legacy"):
            path = self._path("/generate")
            body: dict[str, Any] = {"model": gen.model.remote_id, "input": self.job_input(gen)}
        else:
            path = self._path("/run")
            body = {"tool": params.get("tool", "create-image"), "input": self.job_input(gen)}
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
