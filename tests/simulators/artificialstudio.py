"""Test equipment: a simulator of the Artificial Studio API (PROTOCOLS.md §5).

Raw key in `Authorization` (a "Bearer …" value is refused with 401); `POST /api/run` with strict
validation (unknown fields → 400 with `errors[]`; "The request body is validated strictly —
unknown fields will be rejected with a 400 error", artificialstudio.mintlify.app/api/run), 402
when credits run out; jobs walk `processing → uploading → success|error` by elapsed time (a
prompt containing "fail" ends in `error`); `GET /api/generations/{id}` and the offset-paginated
list; `GET /api/account`; the legacy `POST /api/generate` answering `_id`; output URLs that
expire; and the unsigned success webhook (`X-Webhook-Source`, `X-Media-Id`) POSTed from a
background thread to the URL given, switchable, with the HTTPS/public-URL check of the real
service ON by default.

Tools: `create-image` (text only) and `edit-image`, whose models take `input.image_urls:
string[]` (docs.artificialstudio.ai/image/qwen-image-2-edit: one URL; /image/seedream-4-5-edit:
1 to 10, plus image_size; /image/nano-banana-2-edit: 1 to 5, plus aspect_ratio;
/image/nano-banana-pro-edit). The files API `POST /api/files?transient=true|false` takes raw
bytes with `Content-Type` and `X-Filename` and answers `{id, url, mimetype, size, originalName}`
(github Artificial-Studio/n8n-nodes-artificialstudio `GenericFunctions.ts` uploadBinary, the
`UploadedFile` shape); the url is public ("returns the public URL to put in an input"). Every
upload and every image a job was given is recorded (`uploads`, job `_images`).
"""

from __future__ import annotations

import io
import ipaddress
import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx
from PIL import Image

from .base import Request, Response, Simulator, png_bytes

RUN_FIELDS = {"tool", "input", "webhook"}
CREATE_FIELDS = {"model", "prompt", "image_size", "num_inference_steps", "seed"}
MODELS = {"flux-schnell", "flux-dev", "playground-v2"}
# edit-image models: (most image URLs, input fields), from each model's docs page.
EDIT_MODELS = {
    "qwen-image-2-edit": (1, {"model", "prompt", "image_urls"}),
    "seedream-4.5-edit": (10, {"model", "prompt", "image_urls", "image_size"}),
    "nano-banana-2-edit": (5, {"model", "prompt", "image_urls", "aspect_ratio"}),
    "nano-banana-pro-edit": (10, {"model", "prompt", "image_urls"}),  # no limit given: [inferred]
}
ASPECT_RATIOS = {"auto", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9"}
# The n8n node's File → Upload: "Images, videos, audio and 3D models are supported" [inferred:
# other types refused].
UPLOAD_TYPES = ("image/", "video/", "audio/", "model/")
IMAGE_SIZES = {
    "square",
    "square_hd",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ArtificialStudioSimulator(Simulator):
    name = "artificialstudio"

    def __init__(
        self,
        *,
        api_key: str = "prod_sim_key",
        duration: float = 0.0,
        credits: int = 1000,
        send_webhooks: bool = True,
        webhook_public_only: bool = True,
        output_ttl: float = 3600.0,
        **kw,
    ):
        self.api_key = api_key
        self.duration = duration
        self.credits = credits
        self.send_webhooks = send_webhooks
        # The service's own rule (AS4): "Webhook URLs must use HTTPS. Private or internal URLs
        # ... are rejected". On by default; off only to deliver to a loopback Easel.
        self.webhook_public_only = webhook_public_only
        self.output_ttl = output_ttl
        self.jobs: dict[str, dict] = {}
        self.files: dict[str, tuple[bytes, float]] = {}
        self.uploads: dict[str, dict] = {}
        self.deliveries: list[dict] = []
        self.submissions = 0
        super().__init__(**kw)

    def routes(self):
        return [
            ("POST", r"/api/run", self.run),
            ("POST", r"/api/generate", self.legacy_generate),
            ("GET", r"/api/generations", self.list),
            ("GET", r"/api/generations/(?P<id>[0-9a-f]+)", self.get),
            ("GET", r"/api/account", self.account),
            ("GET", r"/files/(?P<token>[A-Za-z0-9_-]+)\.png", self.file),
            ("POST", r"/api/files", self.upload),
            ("GET", r"/uploads/(?P<id>[0-9a-f]+)/[^/]+", self.uploaded),
        ]

    def account(self, request: Request) -> Response:
        return Response(200, {"email": "sim@example.com", "plan": "pro", "credits": self.credits})

    def authorized(self, request: Request) -> bool:
        public = request.path.startswith(("/files/", "/uploads/"))
        return public or request.header("authorization") == self.api_key

    def unauthorized(self, request: Request) -> Response:
        if not request.header("authorization"):
            return Response(401, {"message": "Authorization header is required"})
        return Response(401, {"message": "Invalid API key"})

    @staticmethod
    def invalid(errors: list[tuple[str, str, str]]) -> Response:
        return Response(
            400,
            {
                "message": "Validation failed",
                "errors": [{"field": f, "message": m, "code": c} for f, m, c in errors],
            },
        )

    def _webhook_refused(self, url) -> str | None:
        if url is None:
            return None
        if not isinstance(url, str):
            return "Expected string"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "Invalid url"
        if self.webhook_public_only:
            if parts.scheme != "https":
                return "Webhook URL must use HTTPS"
            try:
                private = not ipaddress.ip_address(parts.hostname).is_global
            except ValueError:
                private = parts.hostname in ("localhost",) or parts.hostname.endswith(".local")
            if private:
                return "Webhook URL must be public"
        return None

    def _schema(self, tool: str, model: str | None):
        """(model, input fields, most image URLs or 0) or a 404 Response."""
        if tool == "create-image":
            model = model or "flux-schnell"
            if model not in MODELS:
                return Response(404, {"message": f"Model '{model}' not found"})
            return model, CREATE_FIELDS, 0
        if tool == "edit-image":
            # "input.model: Defaults to the tool's primary model" (AS2); which one is primary
            # is not documented [inferred: the first listed].
            model = model or next(iter(EDIT_MODELS))
            if model not in EDIT_MODELS:
                return Response(404, {"message": f"Model '{model}' not found"})
            most, fields = EDIT_MODELS[model]
            return model, fields, most
        return Response(404, {"message": f"Tool '{tool}' not found"})

    def run(self, request: Request) -> Response:
        body = request.json
        if not isinstance(body, dict):
            return self.invalid([("body", "Expected object", "invalid_type")])
        errors = [
            (f, f"Unrecognized key '{f}'", "unrecognized_keys")
            for f in sorted(set(body) - RUN_FIELDS)
        ]
        if not isinstance(body.get("tool"), str):
            errors.append(("tool", "Required", "invalid_type"))
        inputs = body.get("input")
        if not isinstance(inputs, dict):
            errors.append(("input", "Required", "invalid_type"))
        refused = self._webhook_refused(body.get("webhook"))
        if refused:
            errors.append(("webhook", refused, "invalid_string"))
        if errors:
            return self.invalid(errors)
        schema = self._schema(body["tool"], inputs.get("model"))
        if isinstance(schema, Response):
            return schema
        model, fields, most = schema
        errors = [
            (f"input.{f}", f"Unrecognized key '{f}'", "unrecognized_keys")
            for f in sorted(set(inputs) - fields)
        ]
        if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"].strip():
            errors.append(("input.prompt", "Required", "invalid_type"))
        if "image_size" in fields and inputs.get("image_size", "square") not in IMAGE_SIZES:
            errors.append(("input.image_size", "Invalid enum value", "invalid_enum_value"))
        if "aspect_ratio" in fields and inputs.get("aspect_ratio", "auto") not in ASPECT_RATIOS:
            errors.append(("input.aspect_ratio", "Invalid enum value", "invalid_enum_value"))
        urls = inputs.get("image_urls")
        if most and (
            not isinstance(urls, list)
            or not 1 <= len(urls) <= most
            or not all(isinstance(u, str) and urlsplit(u).scheme in ("http", "https") for u in urls)
        ):
            errors.append(("input.image_urls", f"Expected 1 to {most} image URLs", "invalid_type"))
        if errors:
            return self.invalid(errors)
        job = self._create(
            inputs, body.get("webhook"), tool=body["tool"], model=model, legacy=False
        )
        if isinstance(job, Response):
            return job
        keys = ("id", "status", "tool", "createdAt")
        return Response(200, {k: job[k] for k in keys})

    # --- the files API (n8n node GenericFunctions.ts uploadBinary) ----------------------

    def upload(self, request: Request) -> Response:
        transient = request.query.get("transient", "false")
        mimetype = request.header("content-type").split(";")[0].strip().lower()
        errors = []
        if transient not in ("true", "false"):
            errors.append(("transient", "Expected boolean", "invalid_type"))
        if not mimetype.startswith(UPLOAD_TYPES):
            errors.append(("Content-Type", "Unsupported file type", "invalid_type"))
        if not request.body:
            errors.append(("file", "Required", "invalid_type"))
        if errors:
            return self.invalid(errors)
        name = request.header("x-filename") or "upload"
        file_id = secrets.token_hex(12)
        entry = {"data": request.body, "mimetype": mimetype, "transient": transient == "true"}
        with self.lock:
            self.uploads[file_id] = entry
        url = f"{self.url}/uploads/{file_id}/{quote(name)}"
        info = {"mimetype": mimetype, "size": len(request.body), "originalName": name}
        return Response(200, {"id": file_id, "url": url, **info})

    def uploaded(self, request: Request) -> Response:
        entry = self.uploads.get(request.match["id"])
        if entry is None:
            return Response(404, {"message": "File not found"})
        return Response(200, entry["data"], content_type=entry["mimetype"])

    def _fetch(self, url: str) -> bytes | None:
        """The bytes behind an input URL, as the service would download them: its own uploads
        from its store, anything else over HTTP (None = could not be fetched)."""
        parts = urlsplit(url)
        own = f"{parts.scheme}://{parts.netloc}" == self.url
        if own and parts.path.startswith("/uploads/"):
            entry = self.uploads.get(parts.path.split("/")[2])
            return entry["data"] if entry else None
        try:
            response = httpx.get(url, timeout=5.0, follow_redirects=False)
        except httpx.HTTPError:
            return None
        return response.content if response.status_code == 200 else None

    def legacy_generate(self, request: Request) -> Response:
        body = request.json
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("input"), dict)
            or not isinstance(body["input"].get("prompt"), str)
        ):
            return Response(400, {"message": "model and input.prompt are required"})
        if body.get("model") not in MODELS:
            return Response(404, {"message": f"Model '{body.get('model')}' not found"})
        job = self._create(
            body["input"],
            body.get("webhook"),
            tool="create-image",
            model=body["model"],
            legacy=True,
        )
        if isinstance(job, Response):
            return job
        return Response(
            200, {"_id": job["id"], "status": "pending", "model": body["model"], "output": None}
        )

    def _create(self, inputs: dict, webhook: str | None, *, tool: str, model: str, legacy: bool):
        images = [self._fetch(u) for u in inputs.get("image_urls") or []]
        with self.lock:
            if self.credits <= 0:
                return Response(402, {"message": "Insufficient credits"})
            self.credits -= 1
            self.submissions += 1
            job = {
                "id": secrets.token_hex(12),
                "status": "processing",
                "tool": tool,
                "model": model,
                "output": None,
                "thumbnail": None,
                "error": None,
                "type": "image",
                "payload": inputs,
                "createdAt": now_iso(),
                "_t0": time.time(),
                "_webhook": webhook,
                "_legacy": legacy,
                "_images": images,
            }
            self.jobs[job["id"]] = job
        if webhook and self.send_webhooks:
            threading.Thread(target=self._webhook_loop, args=(job["id"],), daemon=True).start()
        return job

    def _advance(self, job_id: str) -> dict:
        with self.lock:
            job = self.jobs[job_id]
            if job["status"] in ("success", "error"):
                return job
            elapsed = time.time() - job["_t0"]
            if elapsed >= self.duration:
                if None in job["_images"]:  # [inferred] the service fails a job it cannot read
                    job["status"], job["error"] = "error", "Could not download the input image."
                elif "fail" in job["payload"].get("prompt", "").lower():
                    job["status"], job["error"] = (
                        "error",
                        "The model could not generate this image.",
                    )
                else:
                    token = secrets.token_urlsafe(12)
                    # An edit keeps its photo's framing: the result has the input's size.
                    size = (96, 64)
                    if job["_images"]:
                        size = Image.open(io.BytesIO(job["_images"][0])).size
                    self.files[token] = (
                        png_bytes(*size, (20, 160, 90)),
                        time.time() + self.output_ttl,
                    )
                    job["status"] = "success"
                    job["output"] = f"{self.url}/files/{token}.png"
                    job["thumbnail"] = job["output"]
            elif elapsed >= 0.8 * self.duration:
                job["status"] = "uploading"
            return job

    @staticmethod
    def public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def get(self, request: Request) -> Response:
        if request.match["id"] not in self.jobs:
            return Response(404, {"message": "Generation not found"})
        with self.lock:
            return Response(200, self.public(self._advance(request.match["id"])))

    def list(self, request: Request) -> Response:
        try:
            limit = min(100, int(request.query.get("limit", 20)))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return self.invalid([("limit", "Expected number", "invalid_type")])
        with self.lock:
            items = [self.public(self._advance(i)) for i in self.jobs]
        if request.query.get("status"):
            items = [i for i in items if i["status"] == request.query["status"]]
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        pagination = {"total": len(items), "limit": limit, "offset": offset, "hasMore": more}
        return Response(200, {"data": page, "pagination": pagination})

    def file(self, request: Request) -> Response:
        entry = self.files.get(request.match["token"])
        if entry is None or time.time() > entry[1]:
            return Response(404, {"message": "File not found"})
        return Response(200, entry[0], content_type="image/png")

    # --- the unsigned webhook ----------------------------------------------------------

    def _webhook_loop(self, job_id: str) -> None:
        while True:
            job = self._advance(job_id)
            if job["status"] in ("success", "error"):
                break
            time.sleep(0.02)
        if job["status"] != "success" and not job["_legacy"]:
            return  # the current API notifies on success only
        with self.lock:
            if not self.send_webhooks:
                return
            if job["_legacy"]:
                keys = ("status", "output", "model", "type", "payload", "error")
                body = {"_id": job["id"], **{k: job[k] for k in keys}}
            else:
                keys = ("id", "status", "tool", "type", "output", "thumbnail", "createdAt")
                body = {k: job[k] for k in keys}
        record = {"id": job["id"], "url": job["_webhook"]}
        try:
            r = httpx.post(
                job["_webhook"],
                json=body,
                timeout=5.0,
                follow_redirects=False,
                headers={"X-Webhook-Source": "artificial-studio", "X-Media-Id": job["id"]},
            )
            record["status"] = r.status_code
        except httpx.HTTPError as exc:
            record["status"] = type(exc).__name__
        with self.lock:
            self.deliveries.append(record)
