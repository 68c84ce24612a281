"""Test equipment: a simulator of the OpenAI Images API and of AI Refinery's copy of it.

Faithful to ../shared/providers/PROTOCOLS.md §3 and §4: Bearer auth, `POST /v1/images/generations`
only (no list/get routes), model-specific validation (dall-e-3 takes n=1; sizes per model),
`url` or `b64_json` per `response_format` (GPT image models always b64), URLs that expire,
`x-ratelimit-*` headers and the error envelope of each flavour: OpenAI
`{"error": {"message", "type", "param", "code"}}`, AI Refinery `{"error": "..."}`.
A prompt containing "forbidden" is refused as a content-policy violation.
"""

from __future__ import annotations

import base64
import secrets
import time

from .base import Request, Response, Simulator, png_bytes

SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image-1": {"1024x1024", "1536x1024", "1024x1536", "auto"},
}
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
        super().__init__(**kw)

    def routes(self):
        routes = [
            ("POST", r"/v1/images/generations", self.generate),
            ("GET", r"/files/(?P<token>[A-Za-z0-9_-]+)\.png", self.file),
        ]
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

    def generate(self, request: Request) -> Response:
        body = request.json
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request.")
        allowed = set(OPENAI_FIELDS)
        if self.flavour == "airefinery":
            allowed |= {"timeout", "extra_body"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return self.error(
                400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0]
            )
        prompt, model = body.get("prompt"), body.get("model") or "dall-e-2"
        if not isinstance(prompt, str) or not prompt.strip():
            return self.error(400, "You must provide a prompt.", param="prompt")
        if "forbidden" in prompt.lower():
            return self.error(
                400,
                "Your request was rejected as a result of our safety system.",
                code="content_policy_violation",
            )
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            return self.error(400, f"{n!r} is not a valid n (1–10).", param="n")
        if model == "dall-e-3" and n != 1:
            return self.error(400, "dall-e-3 only supports n=1.", param="n")
        size = body.get("size") or "1024x1024"
        if model in SIZES and size not in SIZES[model]:
            return self.error(
                400, f"{size!r} is not one of {sorted(SIZES[model])} - 'size'", param="size"
            )
        with self.lock:
            self.submissions += 1
        fmt = body.get("response_format") or ("url" if model.startswith("dall-e") else "b64_json")
        if model.startswith("gpt-image"):
            fmt = "b64_json"
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
