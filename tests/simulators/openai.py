"""Test equipment: a simulator of the OpenAI Images API and of AI Refinery's copy of it.

Faithful to ../shared/providers/PROTOCOLS.md §3 and §4 and to openai/openai-openapi
(`openapi.yaml`: createImage / CreateImageRequest, createImageEdit / CreateImageEditRequest):
Bearer auth, `POST /v1/images/generations` (JSON) and, for OpenAI, `POST /v1/images/edits`
(multipart/form-data, parsed with the standard library's MIME parser; every part is recorded in
`edits`), no list/get routes, model-specific validation (dall-e-3 takes n=1 and cannot edit; sizes
and quality per model; GPT image models refuse `response_format`), `url` or `b64_json` per
`response_format` (GPT image models always b64), URLs that expire, `x-ratelimit-*` headers and the
error envelope of each flavour: OpenAI `{"error": {"message", "type", "param", "code"}}`,
AI Refinery `{"error": "..."}`. A prompt containing "forbidden" is refused as a content-policy
violation. AI Refinery (airefinery-sdk 1.33.2 `air/images/client.py`) has no edits endpoint.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import secrets
import time

from PIL import Image

from .base import Request, Response, Simulator, png_bytes

# CreateImageRequest.size / CreateImageEditRequest.size: "For dall-e-2, use one of 256x256,
# 512x512, or 1024x1024. For dall-e-3, use one of 1024x1024, 1792x1024, or 1024x1792. The
# standard sizes 1024x1024, 1536x1024, and 1024x1536 are supported by the GPT image models; auto
# ..." and gpt-image-2 takes any WIDTHxHEIGHT in steps of 16, 1:3 to 3:1, up to 3840x2160.
SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
}
# CreateImageRequest.quality: "high, medium and low are supported for the GPT image models; hd
# and standard are supported for dall-e-3; standard is the only option for dall-e-2"; auto is
# the default for all.
QUALITIES = {
    "dall-e-2": {"standard", "auto"},
    "dall-e-3": {"standard", "hd", "auto"},
    "gpt-image": {"low", "medium", "high", "auto"},
}
# "This parameter is only supported for the GPT image models" (background, output_format,
# output_compression, moderation); style "is only supported for dall-e-3". That the API answers
# 400 rather than ignoring them is [inferred] from its answer to response_format below.
GPT_IMAGE_ONLY = {"background", "output_format", "output_compression", "moderation"}
# CreateImageEditRequest's fields (openapi.yaml); `safety_identifier` is the SDK's newer name
# for `user` (openai 3.51.0 `types/image_edit_params.py`).
EDIT_FIELDS = {
    "image",
    "image[]",
    "prompt",
    "mask",
    "background",
    "model",
    "n",
    "size",
    "response_format",
    "output_format",
    "output_compression",
    "user",
    "safety_identifier",
    "input_fidelity",
    "stream",
    "partial_images",
    "quality",
}
# createImageEdit: "This endpoint supports GPT Image models (gpt-image-1.5, gpt-image-1,
# gpt-image-1-mini, and chatgpt-image-latest) and dall-e-2"; its model default is gpt-image-1.5.
EDIT_DEFAULT_MODEL = "gpt-image-1.5"
OPENAI_FIELDS = {
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "response_format",
    "style",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "user",
    "safety_identifier",
    "stream",
    "partial_images",
}


def family(model: str) -> str:
    return "gpt-image" if model.startswith(("gpt-image", "chatgpt-image")) else model


def size_ok(model: str, size: str) -> bool:
    fam = family(model)
    if fam not in SIZES or size in SIZES[fam]:
        return True
    if not model.startswith("gpt-image-2"):
        return False
    try:
        w, h = (int(v) for v in size.split("x"))
    except ValueError:
        return False
    return w % 16 == h % 16 == 0 and w * h <= 3840 * 2160 and max(w, h) <= 3 * min(w, h)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]]:
    """(name, filename, content type, bytes) of each part, by RFC 7578 via the stdlib parser."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return []
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        parts.append((str(name), part.get_filename(), part.get_content_type(), data))
    return parts


class OpenAISimulator(Simulator):
    name = "openai"

    def __init__(
        self, *, flavour: str = "openai", api_key: str = "sk-sim-key", url_ttl: float = 3600.0, **kw
    ):
        self.flavour = flavour
        self.api_key = api_key
        self.url_ttl = url_ttl  # seconds an output URL is served; dall-e serves them an hour
        self.files: dict[str, tuple[bytes, float]] = {}
        self.submissions = 0
        # Every well-formed edit request: {"fields": {name: text}, "files": {name: [(filename,
        # content type, bytes)]}}, so a test can compare what arrived byte for byte.
        self.edits: list[dict] = []
        self.out_of_quota = False  # answer 429 insufficient_quota, as an account without credit
        super().__init__(**kw)

    def routes(self):
        routes = [
            ("POST", r"/v1/images/generations", self.generate),
            ("GET", r"/files/(?P<token>[A-Za-z0-9_-]+)\.png", self.file),
        ]
        if self.flavour == "openai":
            routes.append(("POST", r"/v1/images/edits", self.edit))
            routes.append(("POST", r"/v1/moderations", self.moderate))
        if self.flavour == "airefinery":  # SDK ≤1.14 posted under /inference
            routes.append(("POST", r"/inference/images/generations", self.generate))
        return routes

    # --- auth and errors -----------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/files/"):
            return True  # signed-URL style: the token in the path is the credential
        return request.header("authorization") == f"Bearer {self.api_key}"

    def error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type_: str = "invalid_request_error",
    ) -> Response:
        if self.flavour == "airefinery":
            return Response(status, {"error": message})
        return Response(
            status, {"error": {"message": message, "type": type_, "param": param, "code": code}}
        )

    def unauthorized(self, request: Request) -> Response:
        return self.error(401, "Incorrect API key provided.", code="invalid_api_key")

    # --- routes --------------------------------------------------------------------------

    def quota_refusal(self) -> Response | None:
        if not self.out_of_quota:
            return None
        # The envelope of OpenAI's error-codes guide for an exhausted quota (PROTOCOLS.md §4).
        return self.error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            code="insufficient_quota",
            type_="insufficient_quota",
        )

    def generate(self, request: Request) -> Response:
        if self.quota_refusal():
            return self.quota_refusal()
        body = request.json
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request.")
        allowed = set(OPENAI_FIELDS)
        if self.flavour == "airefinery":
            # The AI Refinery SDK puts `timeout` and `extra_body` in the body; the gateway takes
            # them (PROTOCOLS.md §3 "accept and ignore"), as it does the `sdk_version` header.
            allowed |= {"timeout", "extra_body"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return self.unknown_parameter(unknown[0])
        model = body.get("model") or "dall-e-2"
        refusal = self.validate(body, model, edit=False)
        if refusal:
            return refusal
        with self.lock:
            self.submissions += 1
        return self.reply(body, model)

    def edit(self, request: Request) -> Response:
        if self.quota_refusal():
            return self.quota_refusal()
        content_type = request.header("content-type")
        if not content_type.startswith("multipart/form-data"):
            # createImageEdit also takes JSON with `images` references; this simulator serves
            # the multipart form only and says so.
            return self.error(400, "This simulator takes only multipart/form-data edits.")
        fields: dict[str, str] = {}
        files: dict[str, list[tuple[str | None, str, bytes]]] = {}
        for name, filename, part_type, data in parse_multipart(content_type, request.body):
            if filename is not None:
                files.setdefault(name, []).append((filename, part_type, data))
            else:
                fields[name] = data.decode("utf-8", "replace")
        unknown = sorted((set(fields) | set(files)) - EDIT_FIELDS)
        if unknown:
            return self.unknown_parameter(unknown[0])
        images = files.get("image", []) + files.get("image[]", [])
        if not images:
            return self.error(400, "Missing required parameter: 'image'.", param="image")
        model = fields.get("model") or EDIT_DEFAULT_MODEL
        body: dict = dict(fields)
        if "n" in body:
            try:
                body["n"] = int(body["n"])
            except ValueError:
                return self.error(400, f"Invalid type for 'n': {body['n']!r}.", param="n")
        fam = family(model)
        if fam not in ("dall-e-2", "gpt-image"):
            # createImageEdit names dall-e-2 and the GPT image models only. OpenAI's exact
            # words for another model are [unknown]; these follow its invalid_value errors.
            return self.error(
                400,
                f"Invalid value: '{model}'. Supported values are: 'dall-e-2' and GPT image models.",
                param="model",
                code="invalid_value",
            )
        refusal = self.validate(body, model, edit=True) or self.validate_images(model, images)
        if refusal:
            return refusal
        with self.lock:
            self.submissions += 1
            self.edits.append({"fields": fields, "files": files})
        return self.reply(body, model)

    def moderate(self, request: Request) -> Response:
        """POST /v1/moderations, per the OpenAI API reference "Create moderation" and openai
        3.51.0 `types/moderation_create_response.py` / `types/moderation.py`: `input` is a string
        or a list of strings, one result each with `flagged`, `categories` (name → bool) and
        `category_scores`. An input containing "violent" is flagged as violence, "hateful" as
        hate; anything else passes."""
        body = request.json
        if not isinstance(body, dict) or "input" not in body:
            return self.error(400, "'input' is a required property", param="input")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for text in inputs:
            text = str(text).lower()
            cats = {"violence": "violent" in text, "hate": "hateful" in text, "sexual": False}
            results.append(
                {
                    "flagged": any(cats.values()),
                    "categories": cats,
                    "category_scores": {k: 0.97 if v else 0.01 for k, v in cats.items()},
                }
            )
        model = body.get("model") or "omni-moderation-latest"
        return Response(
            200, {"id": f"modr-{secrets.token_hex(8)}", "model": model, "results": results}
        )

    def unknown_parameter(self, name: str) -> Response:
        # The real answer to a field the model does not take, e.g. response_format to
        # gpt-image-1 (github vercel/ai#6102, lofcz/LLMTornado#155).
        return self.error(
            400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
        )

    def validate(self, body: dict, model: str, *, edit: bool) -> Response | None:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self.error(400, "You must provide a prompt.", param="prompt")
        if "forbidden" in prompt.lower():
            return self.error(
                400,
                "Your request was rejected as a result of our safety system.",
                code="content_policy_violation",
            )
        fam = family(model)
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            return self.error(400, f"{n!r} is not a valid n (1–10).", param="n")
        if model == "dall-e-3" and n != 1:
            # "For dall-e-3, only n=1 is supported" (CreateImageRequest.n)
            return self.error(400, "dall-e-3 only supports n=1.", param="n")
        size = body.get("size") or "1024x1024"
        if not size_ok(model, size):
            # The real words (github redevrx/chat_gpt_sdk#93): code invalid_size, param null.
            return self.error(400, "The size is not supported by this model.", code="invalid_size")
        if self.flavour == "airefinery" or fam not in SIZES:
            return None  # a model without OpenAI's rules (AI Refinery's catalogue, newer ids)
        if fam == "gpt-image" and body.get("response_format") is not None:
            return self.unknown_parameter("response_format")
        quality = body.get("quality")
        if quality is not None and quality not in QUALITIES[fam]:
            return self.error(
                400, f"Invalid value: '{quality}'.", param="quality", code="invalid_value"
            )
        for key in sorted(set(body) & GPT_IMAGE_ONLY):
            if fam != "gpt-image":
                return self.unknown_parameter(key)
        if "style" in body and model != "dall-e-3":
            return self.unknown_parameter("style")
        return None

    def validate_images(self, model: str, images: list) -> Response | None:
        for _filename, _type, data in images:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    fmt, (width, height) = img.format, img.size
            except Exception:
                return self.error(400, "Invalid input image: it could not be read.", param="image")
            if family(model) == "dall-e-2":
                # "For dall-e-2, you can only provide one image, and it should be a square png
                # file less than 4MB" (CreateImageEditRequest.image)
                if len(images) > 1 or fmt != "PNG" or width != height or len(data) >= 4 << 20:
                    return self.error(
                        400,
                        "Invalid input image - dall-e-2 takes one square PNG under 4 MB.",
                        param="image",
                    )
            elif fmt not in ("PNG", "JPEG", "WEBP") or len(data) >= 50 << 20 or len(images) > 16:
                # GPT image models: "png, webp, or jpg file less than 50MB ... up to 16 images"
                return self.error(400, "Invalid input image.", param="image")
        return None

    def reply(self, body: dict, model: str) -> Response:
        prompt, n = body["prompt"], body.get("n", 1)
        size = body.get("size") or "1024x1024"
        fmt = body.get("response_format") or ("url" if model.startswith("dall-e") else "b64_json")
        width, height = (64, 64) if size == "auto" else (int(v) for v in size.split("x"))
        data = []
        for i in range(n):
            png = png_bytes(min(width, 256), min(height, 256), colour=(40 + 30 * i, 120, 200))
            if fmt == "b64_json":
                data.append(
                    {
                        "b64_json": base64.b64encode(png).decode(),
                        "url": None,
                        "revised_prompt": None,
                    }
                )
            else:
                token = secrets.token_urlsafe(12)
                with self.lock:
                    self.files[token] = (png, time.time() + self.url_ttl)
                data.append(
                    {
                        "url": f"{self.url}/files/{token}.png",
                        "b64_json": None,
                        "revised_prompt": prompt if model == "dall-e-3" else None,
                    }
                )
        reply = {"created": int(time.time()), "data": data}
        if self.flavour == "airefinery" or model.startswith("gpt-image"):
            reply["usage"] = {
                "input_tokens": len(prompt.split()),
                "output_tokens": 4160 * n,
                "total_tokens": len(prompt.split()) + 4160 * n,
                "input_tokens_details": {"text_tokens": len(prompt.split())},
            }
        headers = {
            "x-request-id": f"req_{secrets.token_hex(8)}",
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "1s",
        }
        return Response(200, reply, headers)

    def file(self, request: Request) -> Response:
        with self.lock:
            entry = self.files.get(request.match["token"])
        if entry is None:
            return Response(
                404, "<Error><Code>BlobNotFound</Code></Error>", content_type="application/xml"
            )
        data, expires = entry
        if time.time() > expires:
            return Response(
                403,
                "<Error><Code>AuthenticationFailed</Code>"
                "<Message>Signed expiry time has passed</Message></Error>",
                content_type="application/xml",
            )
        return Response(200, data, content_type="image/png")

    def expire_urls(self) -> None:
        """Make every URL handed out so far expired, as after dall-e's hour."""
        with self.lock:
            self.files = {k: (v[0], 0.0) for k, v in self.files.items()}
