"""Replicate predictions.

`POST /v1/predictions {"version", "input", "webhook", "webhook_events_filter"}` (or
`POST /v1/models/{owner}/{name}/predictions` when the model id is "owner/name" with no version)
answers 201 with a prediction; Easel records its id and then polls `GET /v1/predictions/{id}`
with backoff, while Replicate's signed "completed" webhook (verified here, Standard Webhooks
HMAC-SHA256) makes the same check run at once. Replicate has no user field: the tag stays in
Easel's records (Generation.tag_sent) rather than being slipped into a model's input, where an
unknown field could change what a model does. Errors are problem-details JSON (`detail`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from django.core.cache import cache

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    Pending,
    ProviderError,
    provider_setting,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

WEBHOOK_TOLERANCE = 300  # seconds; older or newer timestamps are refused as replays
SECRET_CACHE_KEY = "replicate:webhook-signing-key"
PROGRESS = {"starting": 0.05, "processing": 0.5}


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 signature Replicate puts after "v1," (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_signature(
    secret: str, headers: dict[str, str], body: bytes, now: float | None = None
) -> bool:
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (secret and webhook_id and timestamp and signatures):
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((now or time.time()) - sent_at) > WEBHOOK_TOLERANCE:
        return False
    try:
        expected = sign(secret, webhook_id, timestamp, body)
    except (binascii.Error, ValueError):
        return False
    for part in signatures.split():
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class ReplicateProvider(HttpProvider):
    name = "replicate"
    label = "Replicate"
    supports_cancel = True
    supports_webhooks = True
    # Problem-details JSON: {"title", "detail", "invalid_fields": [{"field", "description"}]}.
    message_keys = ("detail", *HttpProvider.message_keys)
    field_errors = ("invalid_fields", "field", "description")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _path(self, path: str) -> str:
        return path if self.base_url.endswith("/v1") else f"/v1{path}"

    # --- submit ------------------------------------------------------------------------

    def prediction_input(self, gen) -> dict[str, Any]:
        model = gen.model
        data: dict[str, Any] = {"prompt": gen.prompt}
        if gen.negative_prompt:
            data["negative_prompt"] = gen.negative_prompt
        if gen.seed is not None and model.supports_seed:
            data["seed"] = gen.seed
        if gen.num_images > 1:
            data["num_outputs"] = gen.num_images
        options = gen.options or {}
        if options.get("size") and "x" in options["size"]:
            width, height = options["size"].lower().split("x", 1)
            if width.isdigit() and height.isdigit():
                data["width"], data["height"] = int(width), int(height)
        if options.get("aspect_ratio"):
            data["aspect_ratio"] = options["aspect_ratio"]
        data.update((model.params or {}).get("input") or {})
        return data

    def create_path_and_body(self, gen) -> tuple[str, dict[str, Any]]:
        remote = gen.model.remote_id.strip()
        body: dict[str, Any] = {"input": self.prediction_input(gen)}
        owner_name, _, version = remote.partition(":")
        if version:  # "owner/name:version"
            body["version"] = version
            path = "/predictions"
        elif "/" in owner_name:  # an official model, run at its latest version
            path = f"/models/{owner_name}/predictions"
        else:
            body["version"] = owner_name
            path = "/predictions"
        webhook = self.webhook_url()
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["completed"]
        return self._path(path), body

    def submit(self, gen) -> Done | Pending:
        path, body = self.create_path_and_body(gen)
        headers = {}
        wait = (gen.model.params or {}).get("wait")
        if wait:
            headers["Prefer"] = f"wait={int(wait)}"
        response = self.request("POST", path, json=body, headers=headers)
        prediction = self.json(response, accepted=True)
        result = self.read(prediction)
        if isinstance(result, Failed):
            raise ProviderError(result.reason, retryable=False)
        return result

    # --- check -------------------------------------------------------------------------

    def check(self, gen) -> Done | Pending | Failed:
        response = self.request("GET", self._path(f"/predictions/{gen.provider_job_id}"))
        return self.read(self.json(response))

    def read(self, prediction: Any) -> Done | Pending | Failed:
        if not isinstance(prediction, dict) or not prediction.get("id"):
            raise ProviderError("Replicate answered without a prediction id.", retryable=True)
        status = prediction.get("status")
        if status == "succeeded":
            return Done(
                images=[ImageOutput(url=url) for url in output_urls(prediction.get("output"))]
            )
        if status == "failed":
            return Failed(f"Replicate: {prediction.get('error') or 'the prediction failed.'}")
        if status == "canceled":
            return Failed("Canceled at Replicate.", canceled=True)
        if status in ("starting", "processing"):
            return Pending(
                job_id=str(prediction["id"]), progress=PROGRESS[status], state={"status": status}
            )
        raise ProviderError(f"Replicate reported an unknown status {status!r}.", retryable=False)

    def cancel(self, gen) -> None:
        self.request("POST", self._path(f"/predictions/{gen.provider_job_id}/cancel"))

    def check_connection(self) -> str:
        account = self.json(self.request("GET", self._path("/account")))
        return f"Connected to Replicate as {account.get('username', 'an account')}."

    # --- webhooks ----------------------------------------------------------------------

    def webhook_secret(self) -> str:
        """REPLICATE_WEBHOOK_SECRET, or the account's default key fetched once and cached."""
        secret = provider_setting(self.name, "webhook_secret")
        if secret:
            return secret
        secret = cache.get(SECRET_CACHE_KEY)
        if secret:
            return secret
        try:
            secret = self.json(self.request("GET", self._path("/webhooks/default/secret"))).get(
                "key", ""
            )
        except (ProviderError, AttributeError):
            return ""
        if secret:
            cache.set(SECRET_CACHE_KEY, secret, timeout=3600)
        return secret

    def webhook_job_id(self, request: HttpRequest) -> str | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not verify_signature(self.webhook_secret(), headers, request.body):
            return None
        try:
            prediction = json.loads(request.body)
        except ValueError:
            return None
        job_id = prediction.get("id") if isinstance(prediction, dict) else None
        return str(job_id) if job_id else None


def output_urls(output: Any) -> list[str]:
    """Replicate outputs are a URL, a list of URLs, or (some models) an object holding them."""
    if isinstance(output, str):
        return [output]
    if isinstance(output, list):
        return [item for item in output if isinstance(item, str) and item]
    if isinstance(output, dict):
        return [
            v for v in output.values() if isinstance(v, str) and v.startswith(("http", "data:"))
        ]
    return []
