"""Test equipment: a simulator of Replicate's predictions API (PROTOCOLS.md §6).

Bearer (or legacy `Token`) auth; `POST /v1/predictions` and `/v1/models/{owner}/{name}/predictions`
→ 201 with `urls.get`/`urls.cancel`; statuses walk `starting → processing → succeeded` by elapsed
time (`start_after`, `duration`), or `failed` with `error` when the prompt contains "fail";
`Prefer: wait[=n]` holds the request until done; cancel; unknown top-level fields → 422 with
`invalid_fields`; problem-details errors; output URLs that expire; signed webhooks
(Standard Webhooks, the key at `GET /v1/webhooks/default/secret`) honouring
`webhook_events_filter`, POSTed from a background thread to the URL given (switchable).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime

import httpx

from .base import Request, Response, Simulator, png_bytes

CREATE_FIELDS = {"version", "input", "webhook", "webhook_events_filter", "stream"}
VERSION = re.compile(r"^[0-9a-f]{64}$")


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
        **kw,
    ):
        self.token = token
        self.duration = duration  # seconds from creation to a terminal status
        self.start_after = min(start_after, duration)
        self.models = set(models)
        self.output_ttl = output_ttl
        self.send_webhooks = send_webhooks
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.predictions: dict[str, dict] = {}
        self.files: dict[str, tuple[bytes, float]] = {}
        self.deliveries: list[dict] = []  # webhooks sent: event, status code or error
        self.submissions = 0
        super().__init__(**kw)

    def routes(self):
        return [
            ("POST", r"/v1/predictions", self.create),
            ("POST", r"/v1/models/(?P<owner>[^/]+)/(?P<model>[^/]+)/predictions", self.create),
            ("GET", r"/v1/predictions/(?P<id>[a-z0-9]+)", self.get),
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
            "urls": {"get": base, "cancel": f"{base}/cancel"},
            "metrics": {},
            "_created": now,
            "_webhook": body.get("webhook"),
            "_filter": body.get("webhook_events_filter")
            or ["start", "output", "logs", "completed"],
            "_canceled": False,
        }
        with self.lock:
            self.submissions += 1
            self.predictions[pid] = prediction
            snapshot = self._public(prediction)  # a new prediction always starts
        if prediction["_webhook"] and self.send_webhooks:
            threading.Thread(target=self._webhook_loop, args=(pid,), daemon=True).start()
        wait = self._prefer_wait(request.header("prefer"))
        if wait:
            deadline = now + wait
            while time.time() < deadline and self._advance(pid)["status"] not in (
                "succeeded",
                "failed",
                "canceled",
            ):
                time.sleep(0.02)
            with self.lock:
                return Response(201, self._public(self._advance(pid)))
        return Response(201, snapshot)

    @staticmethod
    def _prefer_wait(value: str) -> float:
        m = re.match(r"^\s*wait(?:=(\d+))?\s*$", value or "")
        if not m:
            return 0.0
        return float(min(60, int(m.group(1) or 60)))

    def _advance(self, pid: str) -> dict:
        """Move a prediction along by elapsed time; terminal states never change."""
        with self.lock:
            p = self.predictions[pid]
            if p["status"] in ("succeeded", "failed", "canceled"):
                return p
            elapsed = time.time() - p["_created"]
            if elapsed >= self.duration:
                p["started_at"] = p["started_at"] or iso(p["_created"] + self.start_after)
                p["completed_at"] = iso(time.time())
                if "fail" in p["input"]["prompt"].lower():
                    p["status"], p["error"] = "failed", "CUDA out of memory (simulated failure)"
                else:
                    p["status"] = "succeeded"
                    n = int(p["input"].get("num_outputs") or 1)
                    p["output"] = [
                        self._store(png_bytes(64, 64, (90, 30 * i, 160))) for i in range(n)
                    ]
                    p["metrics"] = {"predict_time": round(self.duration, 3)}
                p["logs"] = "100%|██████████| 4/4"
            elif elapsed >= self.start_after:
                p["status"], p["started_at"] = "processing", p["started_at"] or iso(time.time())
                p["logs"] = f"{int(100 * elapsed / max(self.duration, 1e-6))}%"
            return p

    def _store(self, data: bytes) -> str:
        token = secrets.token_urlsafe(12)
        self.files[token] = (data, time.time() + self.output_ttl)
        return f"{self.url}/delivery/{token}.png"

    @staticmethod
    def _public(p: dict) -> dict:
        return {k: v for k, v in p.items() if not k.startswith("_")}

    def get(self, request: Request) -> Response:
        if request.match["id"] not in self.predictions:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        with self.lock:
            return Response(200, self._public(self._advance(request.match["id"])))

    def cancel(self, request: Request) -> Response:
        pid = request.match["id"]
        if pid not in self.predictions:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        p = self._advance(pid)
        with self.lock:
            if p["status"] in ("starting", "processing"):
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
        ts = str(int(time.time()) if timestamp is None else timestamp)
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        import hashlib
        import hmac

        digest = hmac.new(key, f"{webhook_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": ts,
            "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
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
            if status in ("succeeded", "failed", "canceled"):
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
