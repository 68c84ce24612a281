"""Test equipment: a simulator of Replicate's predictions API (PROTOCOLS.md §6 + Corrections).

Written from Replicate's OpenAPI spec as vendored by github tryAGI/Replicate
(`src/libs/Replicate/openapi.json`, "the spec" below) and replicate-python:

- Bearer (or legacy `Token`) auth; `POST /v1/predictions` and
  `/v1/models/{owner}/{name}/predictions` → 201 with `urls.get`/`urls.cancel`/`urls.web`
  (spec predictions.create); statuses walk `starting → processing → succeeded` by elapsed time
  (`start_after`, `duration`), `failed` with `error` when the prompt contains "fail", or
  `aborted` (spec status enum: "terminated before it started running") when
  `abort_before_start` is set;
- `Prefer` must match the spec's pattern `^wait(=([1-9]|[1-9][0-9]|60))?$` (bare `wait` = 60 s,
  spec parameters_prefer_header); a bad one is refused with a 422 problem (inferred: the spec
  lists no error for it; 422 is how Replicate refuses an invalid request, changelog 2024-05-01);
- `reply_delay`: the prediction is created and runs, but the reply comes that much later (a
  slow network or proxy: the work still happens at the provider);
- files API: `POST /v1/files` multipart `content` (filename and type from the part, or the
  `filename`/`type` fields) → 201 file object with `urls.get` (spec files.create,
  schemas_file_response); `GET /v1/files/{id}`;
- file inputs (`file_inputs`, default `image`): an http(s) URL is fetched, a `data:` URI decoded,
  a `urls.get` of an uploaded file resolved; the bytes are kept in `inputs[prediction id]`
  (spec: "Files should be passed as HTTP URLs or data URLs"); one that cannot be read fails
  the prediction;
- `GET /v1/predictions`: most recent first, `created_after`/`created_before`, `page_size` a page
  (spec: 100), `next`/`previous` cursor URLs (spec predictions.list);
- cancel; unknown top-level fields → 422 with `invalid_fields`; problem-details errors; output
  URLs that expire; signed webhooks (Standard Webhooks, signed by the `standardwebhooks`
  reference library when installed; key at `GET /v1/webhooks/default/secret`) honouring
  `webhook_events_filter`, POSTed from a background thread to the URL given (switchable).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP

import httpx

try:  # the Standard Webhooks reference library (requirements-dev.txt)
    from standardwebhooks import Webhook
except ImportError:  # pragma: no cover
    Webhook = None

from .base import Request, Response, Simulator, png_bytes

CREATE_FIELDS = {"version", "input", "webhook", "webhook_events_filter", "stream"}
VERSION = re.compile(r"^[0-9a-f]{64}$")
PREFER = re.compile(r"^wait(=([1-9]|[1-9][0-9]|60))?$")  # spec parameters_prefer_header
FINAL = ("succeeded", "failed", "canceled", "aborted")


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


class ReplicateSimulator(Simulator):
    name = "replicate"

    def __init__(
        self,
        *,
        token: str = "r8_sim_token",
        duration: float = 0.0,
        start_after: float = 0.0,
        models: tuple[str, ...] = ("black-forest-labs/flux-schnell",),
        output_ttl: float = 3600.0,
        send_webhooks: bool = True,
        secret: str | None = None,
        file_inputs: tuple[str, ...] = ("image",),
        page_size: int = 100,
        **kw,
    ):
        self.token = token
        self.duration = duration  # seconds from creation to a terminal status
        self.start_after = min(start_after, duration)
        self.models = set(models)
        self.output_ttl = output_ttl
        self.send_webhooks = send_webhooks
        self.secret = secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.file_inputs = file_inputs
        self.page_size = page_size
        self.reply_delay = 0.0
        self.abort_before_start = False
        self.reply_override: bytes | None = None  # the next create's 201 body, once
        self.control_map = False  # outputs [control map, result], as ControlNet models do
        self.delivery_via: ReplicateSimulator | None = None  # outputs served by another host
        self.predictions: dict[str, dict] = {}
        self.files: dict[str, tuple[bytes, float]] = {}
        self.uploads: dict[str, dict] = {}  # files API: id → file object + "_data"
        self.inputs: dict[str, dict[str, bytes]] = {}  # prediction id → file input → bytes
        self.deliveries: list[dict] = []  # webhooks sent: event, status code or error
        self.submissions = 0
        super().__init__(**kw)

    def routes(self):
        return [
            ("POST", r"/v1/predictions", self.create),
            ("POST", r"/v1/models/(?P<owner>[^/]+)/(?P<model>[^/]+)/predictions", self.create),
            ("GET", r"/v1/predictions", self.listing),
            ("GET", r"/v1/predictions/(?P<id>[a-z0-9]+)", self.get),
            ("POST", r"/v1/files", self.upload),
            ("GET", r"/v1/files/(?P<id>[a-z0-9]+)", self.file_object),
            ("POST", r"/v1/predictions/(?P<id>[a-z0-9]+)/cancel", self.cancel),
            ("GET", r"/v1/webhooks/default/secret", lambda r: Response(200, {"key": self.secret})),
            (
                "GET",
                r"/v1/account",
                lambda r: Response(
                    200, {"type": "user", "username": "sim", "name": "Replicate simulator"}
                ),
            ),
            ("GET", r"/delivery/(?P<token>[A-Za-z0-9_-]+)\.png", self.file),
        ]

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/delivery/"):
            return True
        return request.header("authorization") in (f"Bearer {self.token}", f"Token {self.token}")

    def problem(self, status: int, title: str, detail: str, **extra) -> Response:
        return Response(
            status,
            {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
            content_type="application/problem+json",
        )

    def unauthorized(self, request: Request) -> Response:
        return self.problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    # --- predictions -------------------------------------------------------------------

    def create(self, request: Request) -> Response:
        prefer = request.header("prefer")
        if prefer and not PREFER.match(prefer):
            return self.problem(
                422,
                "Invalid Prefer header",
                f"Prefer must match {PREFER.pattern}.",
                invalid_fields=[
                    {"type": "pattern", "field": "Prefer", "description": "Does not match pattern"}
                ],
            )
        body = request.json
        if not isinstance(body, dict):
            return self.problem(400, "Bad request", "The request body is not valid JSON.")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            return self.problem(
                422,
                "Input validation failed",
                "Unexpected fields.",
                invalid_fields=[
                    {
                        "type": "additional_property_not_allowed",
                        "field": f,
                        "description": f"Additional property {f} is not allowed",
                    }
                    for f in unknown
                ],
            )
        if request.match.get("owner"):
            model = f"{request.match['owner']}/{request.match['model']}"
            if model not in self.models:
                return self.problem(404, "Not found", f"Model {model} does not exist.")
            version = None
        else:
            version = body.get("version")
            if not isinstance(version, str) or not VERSION.match(version):
                return self.problem(422, "Invalid version", "Invalid version or not permitted.")
            model = "sim/versioned-model"
        inputs = body.get("input")
        if not isinstance(inputs, dict) or not isinstance(inputs.get("prompt"), str):
            return self.problem(
                422,
                "Input validation failed",
                "input.prompt is required.",
                invalid_fields=[
                    {
                        "type": "required",
                        "field": "input.prompt",
                        "description": "prompt is required",
                    }
                ],
            )
        now = time.time()
        pid = secrets.token_hex(13)
        received, unreadable = self._read_files(inputs)
        base = f"{self.url}/v1/predictions/{pid}"
        prediction = {
            "id": pid,
            "model": model,
            "version": version,
            "input": inputs,
            "logs": "",
            "output": None,
            "error": None,
            "status": "starting",
            "created_at": iso(now),
            "started_at": None,
            "completed_at": None,
            "data_removed": False,
            "urls": {"get": base, "cancel": f"{base}/cancel", "web": f"{self.url}/p/{pid}"},
            "source": "api",
            "metrics": {},
            "_created": now,
            "_webhook": body.get("webhook"),
            "_filter": body.get("webhook_events_filter")
            or ["start", "output", "logs", "completed"],
            "_canceled": False,
            "_unreadable": unreadable,
            "_abort": self.abort_before_start,
        }
        with self.lock:
            self.submissions += 1
            self.predictions[pid] = prediction
            self.inputs[pid] = received
            snapshot = self._public(prediction)  # a new prediction always starts
        if prediction["_webhook"] and self.send_webhooks:
            threading.Thread(target=self._webhook_loop, args=(pid,), daemon=True).start()
        if prefer:  # "wait up to n seconds", then the prediction as it is (spec create)
            # The pattern lets 61–99 through; the description says at most 60 s.
            deadline = now + min(60.0, float(prefer.partition("=")[2] or 60))
            while time.time() < deadline and self._advance(pid)["status"] not in FINAL:
                time.sleep(0.02)
            with self.lock:
                snapshot = self._public(self._advance(pid))
        time.sleep(self.reply_delay)  # created and running; only the reply is late
        with self.lock:
            override, self.reply_override = self.reply_override, None
        if override is not None:
            return Response(201, override, content_type="application/json")
        return Response(201, snapshot)

    def _read_files(self, inputs: dict) -> tuple[dict[str, bytes], str]:
        """The bytes of each file input, as a model would get them, or why one is unreadable."""
        received = {}
        for name in self.file_inputs:
            value = inputs.get(name)
            if not isinstance(value, str):
                continue
            try:
                received[name] = self._resolve(value)
            except (ValueError, binascii.Error, httpx.HTTPError) as exc:
                return received, f"Could not read input {name!r}: {exc}"
        return received, ""

    def _resolve(self, value: str) -> bytes:
        if value.startswith("data:"):
            meta, _, encoded = value.partition(",")
            if not meta.endswith(";base64"):
                raise ValueError("only base64 data URIs are simulated")
            return base64.b64decode(encoded, validate=True)
        prefix = f"{self.url}/v1/files/"
        if value.startswith(prefix):  # an uploaded file, resolved inside Replicate
            upload = self.uploads.get(value.removeprefix(prefix))
            if upload is None:
                raise ValueError("no such file")
            return upload["_data"]
        if not value.startswith(("http://", "https://")):
            raise ValueError("not a URL or data URI")
        response = httpx.get(value, timeout=5.0)
        response.raise_for_status()
        return response.content

    def _advance(self, pid: str) -> dict:
        """Move a prediction along by elapsed time; terminal states never change."""
        with self.lock:
            p = self.predictions[pid]
            if p["status"] in FINAL:
                return p
            elapsed = time.time() - p["_created"]
            if p["_abort"] and elapsed >= self.start_after:
                p["status"], p["completed_at"] = "aborted", iso(time.time())
                p["error"] = "Prediction deadline reached before it started"
            elif elapsed >= self.duration:
                p["started_at"] = p["started_at"] or iso(p["_created"] + self.start_after)
                p["completed_at"] = iso(time.time())
                if p["_unreadable"]:
                    p["status"], p["error"] = "failed", p["_unreadable"]
                elif "fail" in p["input"]["prompt"].lower():
                    p["status"], p["error"] = "failed", "CUDA out of memory (simulated failure)"
                else:
                    p["status"] = "succeeded"
                    n = int(p["input"].get("num_outputs") or 1)
                    p["output"] = [
                        self._store(png_bytes(64, 64, (90, 30 * i, 160))) for i in range(n)
                    ]
                    if self.control_map:
                        p["output"].insert(0, self._store(png_bytes(64, 64, (0, 0, 0))))
                    p["metrics"] = {"predict_time": round(self.duration, 3)}
                p["logs"] = "100%|██████████| 4/4"
            elif elapsed >= self.start_after:
                p["status"], p["started_at"] = "processing", p["started_at"] or iso(time.time())
                p["logs"] = f"{int(100 * elapsed / max(self.duration, 1e-6))}%"
            return p

    def _store(self, data: bytes) -> str:
        host = self.delivery_via or self
        token = secrets.token_urlsafe(12)
        host.files[token] = (data, time.time() + self.output_ttl)
        return f"{host.url}/delivery/{token}.png"

    @staticmethod
    def _public(p: dict) -> dict:
        return {k: v for k, v in p.items() if not k.startswith("_")}

    def get(self, request: Request) -> Response:
        if request.match["id"] not in self.predictions:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        with self.lock:
            return Response(200, self._public(self._advance(request.match["id"])))

    def listing(self, request: Request) -> Response:
        """Most recent first, filtered by creation time, `page_size` a page with cursor URLs."""
        after, before = request.query.get("created_after"), request.query.get("created_before")
        with self.lock:
            items = sorted(self.predictions.values(), key=lambda p: p["_created"], reverse=True)
            items = [
                self._public(self._advance(p["id"]))
                for p in items
                if (not after or p["_created"] >= _parse(after))
                and (not before or p["_created"] < _parse(before))
            ]
        start = int(request.query.get("cursor") or 0)
        page = items[start : start + self.page_size]

        def link(at: int) -> str:
            extra = "".join(f"&{k}={v}" for k, v in request.query.items() if k != "cursor")
            return f"{self.url}/v1/predictions?cursor={at}{extra}"

        more = start + self.page_size < len(items)
        return Response(
            200,
            {
                "next": link(start + self.page_size) if more else None,
                "previous": link(max(0, start - self.page_size)) if start else None,
                "results": page,
            },
        )

    # --- files API ---------------------------------------------------------------------

    def upload(self, request: Request) -> Response:
        content_type = request.header("content-type")
        if not content_type.startswith("multipart/form-data"):
            return self.problem(400, "Bad request", "Expected multipart/form-data.")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
        )
        parts = {
            part.get_param("name", header="content-disposition"): part
            for part in message.iter_parts()
        }
        content = parts.get("content")
        if content is None:
            return self.problem(422, "Input validation failed", "content is required.")
        data = content.get_payload(decode=True) or b""
        if len(data) > 100 * 1024 * 1024:
            return self.problem(413, "Content Too Large", "Files must be less than 100MB in size")

        def field(name: str) -> str | None:
            part = parts.get(name)
            return part.get_payload(decode=True).decode() if part is not None else None

        fid, now = secrets.token_hex(13), time.time()
        file = {
            "id": fid,
            "name": field("filename") or content.get_filename() or "file",
            "content_type": field("type") or content.get_content_type(),
            "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),  # noqa: S324 - an ETag, not security
            "checksums": {"sha256": hashlib.sha256(data).hexdigest()},
            "metadata": json.loads(field("metadata") or "{}"),
            "created_at": iso(now),
            "expires_at": iso(now + 86400),
            "urls": {"get": f"{self.url}/v1/files/{fid}"},
        }
        with self.lock:
            self.uploads[fid] = {**file, "_data": data}
        return Response(201, file)

    def file_object(self, request: Request) -> Response:
        upload = self.uploads.get(request.match["id"])
        if upload is None:
            return self.problem(404, "Not found", "File not found")
        return Response(200, self._public(upload))

    def cancel(self, request: Request) -> Response:
        pid = request.match["id"]
        if pid not in self.predictions:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        p = self._advance(pid)
        with self.lock:
            if p["status"] not in FINAL:
                p["status"], p["completed_at"], p["_canceled"] = "canceled", iso(time.time()), True
            return Response(200, self._public(p))

    def file(self, request: Request) -> Response:
        entry = self.files.get(request.match["token"])
        if entry is None or time.time() > entry[1]:
            return self.problem(404, "Not found", "Output has expired or was removed.")
        return Response(200, entry[0], content_type="image/png")

    # --- webhooks ----------------------------------------------------------------------

    def signed_headers(
        self, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
    ) -> dict[str, str]:
        """Headers exactly as Replicate signs them; tests use this to forge or replay."""
        webhook_id = webhook_id or f"msg_{secrets.token_hex(12)}"
        ts = int(time.time()) if timestamp is None else timestamp
        if Webhook is not None:
            when = datetime.fromtimestamp(ts, UTC)
            signature = Webhook(self.secret).sign(webhook_id, when, body.decode())
        else:  # the same scheme by hand: strip whsec_, base64 (padding optional), HMAC-SHA256
            key = base64.b64decode(self.secret.removeprefix("whsec_") + "==")
            mac = hmac.new(key, f"{webhook_id}.{ts}.".encode() + body, hashlib.sha256).digest()
            signature = f"v1,{base64.b64encode(mac).decode()}"
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature,
            "content-type": "application/json",
        }

    def _webhook_loop(self, pid: str) -> None:
        sent_start = False
        while True:
            p = self._advance(pid)
            status, wanted = p["status"], p["_filter"]
            if not sent_start and status != "starting" and "start" in wanted:
                sent_start = True
                self._deliver(p, "start")
            if status in FINAL:
                if "completed" in wanted:
                    self._deliver(p, "completed")
                return
            time.sleep(0.02)

    def _deliver(self, p: dict, event: str) -> None:
        body = json.dumps(self._public(p)).encode()
        record = {"event": event, "id": p["id"], "url": p["_webhook"]}
        for attempt in range(3):  # retried on network problems, never on a 4xx
            try:
                r = httpx.post(
                    p["_webhook"],
                    content=body,
                    headers=self.signed_headers(body),
                    timeout=5.0,
                    follow_redirects=False,
                )
                record["status"] = r.status_code
                if r.status_code < 500:
                    break
            except httpx.HTTPError as exc:
                record["status"] = type(exc).__name__
            time.sleep(0.2 * (attempt + 1))
        with self.lock:
            self.deliveries.append(record)


def _parse(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
