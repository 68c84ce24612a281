"""OpenAI-style image APIs: OpenAI itself, AI Refinery, and any compatible base URL.

One synchronous call, `POST {base}/v1/images/generations`, answers with `data[]` whose items carry
a `url` (valid for about an hour) or `b64_json`. Both are turned into images in Easel's storage at
once. The user's tag goes in the `user` field. AI Refinery differs only in quirks: its SDK sends
`timeout` and `extra_body` inside the JSON body and its errors are `{"error": "..."}` rather than
OpenAI's `{"error": {"message", "code", ...}}` envelope (both are read).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx

from generator.providers.base import (
    Done,
    HttpProvider,
    ImageOutput,
    ProviderError,
    provider_setting,
)

# Keys of AIModel.params that Easel interprets itself and never forwards to the API.
INTERNAL_PARAMS = {"timeout", "extra_body", "path"}


class OpenAIStyleProvider(HttpProvider):
    supports_webhooks = False

    def raise_for_response(self, response: httpx.Response) -> None:
        # A 429 whose code is insufficient_quota is not a rate limit: the account is out of
        # credit, and asking again cannot help (OpenAI error-codes guide; PROTOCOLS.md
        # Corrections).
        if response.status_code == 429:
            try:
                error = response.json().get("error")
            except (ValueError, AttributeError):
                error = None
            if isinstance(error, dict) and error.get("code") == "insufficient_quota":
                raise ProviderError(
                    f"{self.label} refused the request: the provider account is out of credit "
                    f"({error.get('message') or 'insufficient_quota'})."
                )
        super().raise_for_response(response)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def path(self, gen=None) -> str:
        # Tolerate a base URL given the SDK way (".../v1") as well as the bare host.
        custom = gen.model.params.get("path") if gen is not None else None
        if custom:
            return custom
        return "/images/generations" if self.base_url.endswith("/v1") else "/v1/images/generations"

    def body(self, gen) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": gen.prompt,
            "model": gen.model.remote_id,
            "n": gen.num_images,
        }
        size = (gen.options or {}).get("size")
        if size:
            body["size"] = size
        if gen.tag_sent:
            body["user"] = gen.tag_sent
        for key, value in (gen.model.params or {}).items():
            if key not in INTERNAL_PARAMS:
                body.setdefault(key, value)
        return body

    def request_timeout(self, gen) -> float | None:
        return None

    def submit(self, gen) -> Done:
        kwargs: dict[str, Any] = {"json": self.body(gen)}
        timeout = self.request_timeout(gen)
        if timeout:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(10.0, timeout))
        response = self.request("POST", self.path(gen), **kwargs)
        return Done(images=self.images(self.json(response, accepted=True)))

    def images(self, payload: Any) -> list[ImageOutput]:
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise ProviderError(f"{self.label} answered without a data list.", retryable=False)
        images = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("b64_json"):
                try:
                    data = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError):
                    raise ProviderError(
                        f"{self.label} sent image data that is not valid base64."
                    ) from None
                images.append(ImageOutput(data=data))
            elif item.get("url"):
                images.append(ImageOutput(url=item["url"]))
        if not images:
            raise ProviderError(f"{self.label} answered without any image.", retryable=False)
        return images

    def error_object_message(self, error: dict[str, Any]) -> str:
        message = str(error.get("message") or error.get("code") or "no details")
        if error.get("code") == "content_policy_violation":
            return f"the prompt was refused by its content policy — {message}"
        if error.get("param"):
            return f"{message} (field: {error['param']})"
        return message

    def check_connection(self) -> str:
        # There is no read-only images endpoint (and AI Refinery lists no models), so a GET on
        # the images path proves reachability and the key: 401/403 raise, 404/405 are fine.
        try:
            self.request("GET", self.path())
        except ProviderError as exc:
            if "credentials" in exc.message or exc.retryable:
                raise
        return f"{self.label} is reachable and accepted the key."


# Per-model rules of OpenAI's images API (openai/openai-openapi CreateImageRequest field
# descriptions; PROTOCOLS.md Corrections): sizes, the largest n, and fields only some take.
SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
}
GPT_IMAGE_ONLY = {"background", "output_format", "output_compression", "moderation"}


def _family(remote_id: str) -> str:
    return "gpt-image" if remote_id.startswith("gpt-image") else remote_id


class OpenAIProvider(OpenAIStyleProvider):
    name = "openai"
    label = "OpenAI"

    def options_errors(self, model) -> list[str]:
        """Options and params that contradict OpenAI's rules for the model. dall-e-3 makes one
        image per request, so its options must cap the count at 1 (Easel does not send several
        requests for one generation)."""
        family = _family(model.remote_id or "")
        if family not in SIZES:
            return []  # a model Easel has no rules for (newer or a compatible API)
        options, params = model.options or {}, model.params or {}
        errors = []
        if family == "dall-e-3" and int(options.get("max_images") or 1) > 1:
            errors.append("dall-e-3 makes one image per request: set max_images to 1.")
        bad = sorted(set(options.get("sizes") or []) - SIZES[family])
        if bad:
            errors.append(
                f"{model.remote_id} does not take the sizes {', '.join(bad)} "
                f"(it takes {', '.join(sorted(SIZES[family]))})."
            )
        if family == "gpt-image" and "response_format" in params:
            errors.append("GPT image models take no response_format (they always return base64).")
        if family != "gpt-image":
            for key in sorted(GPT_IMAGE_ONLY & set(params)):
                errors.append(f"{key} is for GPT image models only, not {model.remote_id}.")
        if family != "dall-e-3" and "style" in params:
            errors.append(f"style is for dall-e-3 only, not {model.remote_id}.")
        return errors


class AIRefineryProvider(OpenAIStyleProvider):
    name = "airefinery"
    label = "AI Refinery"

    DEFAULT_TIMEOUT = 60.0
    # The official client sends its version on every call (airefinery-sdk 1.33.2,
    # air/utils/get_base_headers.py); EASEL_PROVIDERS["airefinery"]["sdk_version"] overrides.
    SDK_VERSION = "1.33.2"

    def auth_headers(self) -> dict[str, str]:
        version = provider_setting(self.name, "sdk_version", self.SDK_VERSION)
        return {**super().auth_headers(), "sdk_version": version}

    def body(self, gen) -> dict[str, Any]:
        body = super().body(gen)
        # The AI Refinery SDK sends these two inside the JSON body (not merged as OpenAI does).
        body["timeout"] = self.request_timeout(gen)
        body["extra_body"] = gen.model.params.get("extra_body")
        return body

    def request_timeout(self, gen) -> float:
        return float(gen.model.params.get("timeout") or self.DEFAULT_TIMEOUT)
