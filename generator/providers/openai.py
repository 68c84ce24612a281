"""OpenAI-style image APIs: OpenAI itself, AI Refinery, and any compatible base URL.

One synchronous call, `POST {base}/v1/images/generations` (JSON), answers with `data[]` whose items
carry a `url` (valid for about an hour) or `b64_json`. Both are turned into images in Easel's
storage at once. The user's tag goes in the `user` field. A generation with an input photo (OpenAI
only) goes to `POST {base}/v1/images/edits` instead, as multipart/form-data with the photo in the
`image` part (openai/openai-openapi `createImageEdit`; `openai` SDK `images.edit`); its reply is
read the same way. The submit waits as long as the provider's own SDK does (`sync_read_timeout`,
cut to the model's `timeout_seconds`); a reply that does not come is an unknown outcome, never
sent again. AI Refinery differs only in quirks: its SDK sends `timeout` and `extra_body` inside the
JSON body, it has no image input, and its errors are `{"error": "..."}` rather than OpenAI's
`{"error": {"message", "code", ...}}` envelope (both are read).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx

from generator.errors import InvalidImage
from generator.imaging import check_image
from generator.providers.base import (
    Done,
    HttpProvider,
    ImageOutput,
    ProviderError,
    provider_setting,
)
from generator.providers.photos import InputPhoto, input_photo

# Keys of AIModel.params that Easel interprets itself and never forwards to the API.
INTERNAL_PARAMS = {"timeout", "extra_body", "path", "edit_path"}
# Fields of CreateImageRequest that CreateImageEditRequest does not have (openai/openai-openapi):
# a photo generation leaves them out rather than have the edit refused for them.
GENERATION_ONLY = {"style", "moderation"}


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

    def edit_path(self, gen) -> str:
        """Where a photo goes: `/v1/images/edits` beside the generations path (params `edit_path`
        overrides, for a compatible server that puts it elsewhere)."""
        custom = gen.model.params.get("edit_path")
        if custom:
            return custom
        return self.path(gen).replace("/images/generations", "/images/edits")

    def form(self, gen) -> dict[str, str]:
        """The edit request's text fields: the generation's fields as the SDK's multipart encoder
        writes them (`openai/_qs.py`, brackets format: True → "true", numbers as text, an object
        as `key[sub]` parts such as `svg[model]`), minus generation-only ones."""
        fields: dict[str, str] = {}
        for key, value in self.body(gen).items():
            if key not in GENERATION_ONLY:
                _add_form_field(fields, key, value)
        return fields

    def check_photo(self, gen, photo: InputPhoto) -> None:
        """Refuse, before anything is sent, a photo the model is documented not to take."""

    def submit(self, gen) -> Done:
        photo = input_photo(gen)
        timeout = self.submit_timeout(gen)
        if photo is None:
            response = self.request("POST", self.path(gen), json=self.body(gen), timeout=timeout)
        else:
            problem = self.photo_problem(gen.model)
            if problem:  # run_generation refuses these first; never send a photo-less redesign
                raise ProviderError(f"{problem} Nothing was sent to the provider.")
            self.check_photo(gen, photo)
            image = (photo.name, photo.data, photo.content_type)
            response = self.request(
                "POST",
                self.edit_path(gen),
                data=self.form(gen),
                files={"image": image},
                timeout=timeout,
            )
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


def _add_form_field(fields: dict[str, str], name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _add_form_field(fields, f"{name}[{key}]", item)
    elif isinstance(value, list):
        raise ProviderError(
            f"The model's param {name!r} is a list, which an edit request's form cannot carry; "
            "nothing was sent."
        )
    else:
        fields[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)


# Per-model rules of OpenAI's images API (openai/openai-openapi CreateImageRequest and
# CreateImageEditRequest field descriptions; PROTOCOLS.md Corrections): sizes, the largest n,
# quality values, and fields only some models take.
SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
}
QUALITIES = {
    "dall-e-2": {"standard", "auto"},
    "dall-e-3": {"standard", "hd", "auto"},
    "gpt-image": {"low", "medium", "high", "auto"},
}
GPT_IMAGE_ONLY = {"background", "output_format", "output_compression", "moderation"}
# "For gpt-image-2 ... arbitrary resolutions are supported as WIDTHxHEIGHT strings ... divisible by
# 16 ... aspect ratio between 1:3 and 3:1 ... maximum supported resolution is 3840x2160" (spec,
# CreateImageRequest.size; the SDK's image_generate_params.py says the same of gpt-image-2.5).
FREE_SIZE_PREFIX = "gpt-image-2"
# dall-e-2 edits: "you can only provide one image, and it should be a square png file less than
# 4MB" (CreateImageEditRequest.image). GPT image models take png, webp or jpg under 50 MB.
DALL_E_2_EDIT_BYTES = 4 * 1024 * 1024


def _family(remote_id: str) -> str:
    if remote_id.startswith(("gpt-image", "chatgpt-image")):
        return "gpt-image"
    return remote_id


def _free_size_ok(size: str) -> bool:
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        return False
    return (
        width % 16 == 0
        and height % 16 == 0
        and 0 < width <= 3840
        and 0 < height <= 3840
        and width * height <= 3840 * 2160
        and max(width, height) <= 3 * min(width, height)
    )


class OpenAIProvider(OpenAIStyleProvider):
    name = "openai"
    label = "OpenAI"
    # OpenAI's error-codes guide answers 500 ("The server had an error while processing your
    # request") and 503 ("The engine is currently overloaded") with "Retry your request after
    # a brief wait" (platform.openai.com/docs/guides/error-codes); 502/504 it does not name.
    post_retry_statuses = frozenset({500, 503})
    # The official SDK waits 10 minutes for a reply: `openai/_constants.py` DEFAULT_TIMEOUT =
    # Timeout(timeout=600, connect=5.0) (openai 3.51.0).
    sync_read_timeout = 600.0

    def photo_problem(self, model) -> str:
        """The edits endpoint "supports GPT Image models (gpt-image-1.5, gpt-image-1,
        gpt-image-1-mini, and chatgpt-image-latest) and dall-e-2" (openai-openapi
        createImageEdit). dall-e-3 never could edit. Any other id (a newer OpenAI model, or a
        compatible server's own name) is given the benefit of the doubt: the server says no."""
        remote_id = model.remote_id or ""
        if remote_id == "dall-e-3":
            return "dall-e-3 cannot edit an image; use gpt-image-1 or dall-e-2."
        return ""

    def check_photo(self, gen, photo: InputPhoto) -> None:
        if (gen.model.remote_id or "") != "dall-e-2":
            return
        try:
            content_type, width, height = check_image(photo.data)
        except InvalidImage:
            content_type, width, height = photo.content_type, 0, 1
        if content_type != "image/png" or width != height or len(photo.data) > DALL_E_2_EDIT_BYTES:
            kind = content_type.split("/")[-1].upper()
            raise ProviderError(
                f"dall-e-2 edits only take a square PNG under 4 MB, and this photo is a "
                f"{width}×{height} {kind}; use a GPT image model (gpt-image-1) for room photos. "
                "Nothing was sent to OpenAI."
            )

    def options_errors(self, model) -> list[str]:
        """Options and params that contradict OpenAI's rules for the model. dall-e-3 makes one
        image per request, so its options must cap the count at 1 (Easel does not send several
        requests for one generation)."""
        remote_id = model.remote_id or ""
        family = _family(remote_id)
        if family not in SIZES:
            return []  # a model Easel has no rules for (newer or a compatible API)
        options, params = model.options or {}, model.params or {}
        errors = []
        if family == "dall-e-3" and int(options.get("max_images") or 1) > 1:
            errors.append("dall-e-3 makes one image per request: set max_images to 1.")
        bad = sorted(set(options.get("sizes") or []) - SIZES[family])
        if remote_id.startswith(FREE_SIZE_PREFIX):
            bad = [size for size in bad if not _free_size_ok(size)]
        if bad:
            takes = ", ".join(sorted(SIZES[family]))
            if remote_id.startswith(FREE_SIZE_PREFIX):
                takes += ", or WIDTHxHEIGHT in steps of 16 up to 3840x2160 and 3:1"
            errors.append(
                f"{remote_id} does not take the sizes {', '.join(bad)} (it takes {takes})."
            )
        if family == "gpt-image" and "response_format" in params:
            errors.append("GPT image models take no response_format (they always return base64).")
        quality = params.get("quality")
        if quality is not None and quality not in QUALITIES[family]:
            errors.append(
                f"{remote_id} does not take quality {quality!r} "
                f"(it takes {', '.join(sorted(QUALITIES[family]))})."
            )
        if family != "gpt-image":
            for key in sorted(GPT_IMAGE_ONLY & set(params)):
                errors.append(f"{key} is for GPT image models only, not {remote_id}.")
        if family != "dall-e-3" and "style" in params:
            errors.append(f"style is for dall-e-3 only, not {remote_id}.")
        return errors


class AIRefineryProvider(OpenAIStyleProvider):
    name = "airefinery"
    label = "AI Refinery"

    # The SDK's default `timeout` (airefinery-sdk 1.33.2 `air/types/constants.py`
    # DEFAULT_TIMEOUT = 60), which `images.generate` both sends in the body and gives `requests`
    # as the HTTP timeout (`air/images/client.py`); a model's params `timeout` replaces it.
    sync_read_timeout = 60.0
    # The official client sends its version on every call (airefinery-sdk 1.33.2,
    # air/utils/get_base_headers.py); EASEL_PROVIDERS["airefinery"]["sdk_version"] overrides.
    SDK_VERSION = "1.33.2"

    def photo_problem(self, model) -> str:
        # airefinery-sdk 1.33.2 `air/images/client.py` has `generate` (prompt only) and
        # `segment` (`/v1/images/segmentations`, which returns masks, not a new image): no call
        # that takes a photo to redesign.
        return (
            "AI Refinery cannot take an input photo: its image API only generates from a text "
            "prompt (its segmentation endpoint returns masks, not an edited image)."
        )

    def auth_headers(self) -> dict[str, str]:
        version = provider_setting(self.name, "sdk_version", self.SDK_VERSION)
        return {**super().auth_headers(), "sdk_version": version}

    def submit_seconds(self, gen) -> float:
        wait = float(gen.model.params.get("timeout") or self.sync_read_timeout)
        return float(min(wait, gen.model.timeout_seconds))

    def body(self, gen) -> dict[str, Any]:
        body = super().body(gen)
        # The AI Refinery SDK sends these two inside the JSON body (not merged as OpenAI does),
        # the timeout being the one it waits for the reply.
        body["timeout"] = self.submit_seconds(gen)
        body["extra_body"] = gen.model.params.get("extra_body")
        return body
