"""Meteron simulator — TEST EQUIPMENT, not a provider. Serves Meteron's image API on loopback.

Faithful to ../shared/providers/PROTOCOLS.md §1 "What a faithful Meteron simulator must do":
Bearer keys and `pub_` tokens (401 otherwise); model/user from X-Model/X-Cluster/X-User or the
query string; X-Async true/True → `pending`, walking pending → processing → completed|failed by
elapsed time (`job_duration`), false/False/absent → the request is held and answered completed;
presigned-like output URLs serving PNG bytes or the model server's JSON with a data URI
(`output_mode`), which expire (`url_ttl`, or `expire_urls` at once); listing with
model/user/status/id filters, pageSize ≤ 200 and opaque page tokens; per-user daily/monthly
limits (X-User required when on) with /api/remaining/generations, rejected with a 429 JSON
(the rejection shape is inferred); with `capacity` set, queued async jobs start by X-Priority
score (high 100 > medium 80 > low 20; the daily demotion of heavy users is not simulated). Every request is recorded (see Simulator.requests).

Also, per the references Easel's adapter is checked against (not the adapter itself):
- a sync request whose client gave up keeps running and ends `completed` in the listing, as
  Meteron holds it for the model server, not for the client (seed 000: "X-Async": "false");
- ids are `img_<ULID>` like every documented example (seed 001: img_01h0kckk68r0c5d1gt59zzk3ad);
- listing items carry the documented fields (seed 001: id, modelId, serverId, status,
  outputImages[id, projectId, imageGenerationId, url]) plus those clients read (PROTOCOLS §1:
  outputs[].url, requestBody, reason); `user` and `clusterId` only with `legacy_fields` (the 2023
  SDK's items; unverified today, PROTOCOLS Corrections). No creation time: no source shows one;
- the model server fetches an `image` URL in the body (top level or under `input`) over HTTP
  and records the bytes (`photos`), as a Replicate-backed model reads its input file
  (meteron-ai/roomfix `pages/api/generate.ts` sends `input.image: imageUrl`);
- a model in `controlnet_models` answers two images, control map then result (RoomFix's
  ControlNet model; generate.ts reads `outputImages[1]`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import threading
import time
import urllib.request
from typing import Any

from tests.simulators.base import Request, Response, Simulator, png_bytes

API_KEY = "sim-meteron-key"
PRIORITY_SCORES = {"high": 100, "medium": 80, "low": 20}


class MeteronSimulator(Simulator):
    name = "meteron"

    def __init__(self, *args, **kwargs):
        self.api_keys = {API_KEY}
        self.job_duration = 0.0  # seconds from submit to completed
        self.output_mode = "png"  # "png" (image bytes) or "json" ({"image": "data:…"})
        self.url_ttl = 3600.0  # presigned URL lifetime
        self.expire_urls = False  # switch: every output URL answers 403 "expired"
        self.fail_reason: str | None = None  # switch: jobs end `failed` with this reason
        self.daily_limit: int | None = None
        self.monthly_limit: int | None = None
        # With a capacity, async jobs wait for one of that many servers and start by priority
        # score (high 100, medium 80, low 20; then arrival), as Meteron's priority classes do.
        self.capacity: int | None = None
        self.legacy_fields = False  # switch: items also carry `user`, `clusterId` (2023 SDK)
        self.controlnet_models: set[str] = set()  # models answering [control map, result]
        self.photos: list[bytes] = []  # every input photo the model server fetched
        self.generations: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._state_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @classmethod
    def env_vars(cls, url: str) -> dict[str, str]:
        return {"METERON_BASE_URL": url, "METERON_API_KEY": API_KEY}

    def routes(self):
        return [
            ("POST", r"/api/images/generations", self.create),
            ("GET", r"/api/images/generations", self.list),
            ("GET", r"/api/images/generations/(?P<id>[^/]+)", self.get_one),
            ("GET", r"/api/remaining/generations", self.remaining),
            ("GET", r"/r2/(?P<id>[^/]+)/(?P<n>\d+)", self.output),
        ]

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/r2/"):
            return True  # presigned: the signature in the URL is the credential
        auth = request.header("authorization")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        return token in self.api_keys or token.startswith("pub_")

    def unauthorized(self, request: Request) -> Response:
        return Response(401, {"error": "unauthorized", "message": "Invalid or missing API key"})

    # --- helpers for tests -----------------------------------------------------------------

    def add_history(self, user: str, model: str, count: int, **extra) -> list[str]:
        """Completed generations made earlier (e.g. from another app), for listing tests."""
        ids = []
        for _ in range(count):
            gen = self._new(
                model, user, {"prompt": extra.get("prompt", "earlier image")}, False, ago=3600
            )
            ids.append(gen["id"])
        return ids

    def submissions(self) -> list[Request]:
        return self.received("POST", r"^/api/images/generations$")

    def image_bytes(self, gen_id: str, n: int) -> bytes:
        """What output `n` of a generation serves (for comparing with what Easel stored)."""
        gen = self.generations[gen_id]
        if gen["model"] in self.controlnet_models and n == 0:
            return png_bytes(64, 48, colour=(128, 128, 128))  # the control map
        return png_bytes(64, 48, colour=(40 + n * 60 % 200, 120, 200))

    def fetch_photo(self, body: Any) -> tuple[bytes | None, str]:
        """The model server reads the `image` URL it was given (over HTTP); (bytes, error)."""
        inner = body.get("input") if isinstance(body, dict) else None
        url = (inner or {}).get("image") if isinstance(inner, dict) else None
        url = url or (body.get("image") if isinstance(body, dict) else None)
        if not url:
            return None, ""
        try:
            with urllib.request.urlopen(str(url), timeout=10) as reply:
                data = reply.read()
        except (OSError, ValueError) as exc:
            return None, f"could not fetch input image: {exc}"
        with self._state_lock:
            self.photos.append(data)
        return data, ""

    # --- state -----------------------------------------------------------------------------

    def _new(
        self, model: str, user: str, body: Any, is_async: bool, priority: str = "", ago: float = 0
    ) -> dict[str, Any]:
        with self._state_lock:
            next(self._ids)
        created = time.time() - ago
        gen_id = "img_" + ulid(created)
        count = 1
        inner = body.get("input", body) if isinstance(body, dict) else {}
        if isinstance(inner, dict):
            try:
                count = max(1, min(4, int(inner.get("num_outputs", 1))))
            except (TypeError, ValueError):
                count = 1
        if model in self.controlnet_models:
            count = 2  # ControlNet: the control map, then the result (RoomFix generate.ts)
        gen = {
            "id": gen_id,
            "model": model,
            "user": user,
            "body": body,
            "async": is_async,
            "created": created,
            "duration": self.job_duration,
            "fail_reason": self.fail_reason,
            "count": count,
            "score": PRIORITY_SCORES.get(priority.lower(), PRIORITY_SCORES["medium"]),
        }
        self.generations[gen_id] = gen
        return gen

    def _schedule(self) -> dict[str, float]:
        """Start time of each async job when `capacity` servers take queued jobs by score."""
        jobs = sorted(
            (g for g in list(self.generations.values()) if g["async"]),
            key=lambda g: (g["created"], g["id"]),
        )
        free = [0.0] * max(1, self.capacity or 1)
        starts: dict[str, float] = {}
        waiting = list(jobs)
        while waiting:
            slot = min(range(len(free)), key=free.__getitem__)
            t = max(free[slot], waiting[0]["created"])
            ready = [g for g in waiting if g["created"] <= t]
            job = max(ready, key=lambda g: (g["score"], -g["created"]))
            starts[job["id"]] = t
            free[slot] = t + job["duration"]
            waiting.remove(job)
        return starts

    def _status(self, gen: dict[str, Any]) -> str:
        if self.capacity and gen["async"]:
            start = self._schedule().get(gen["id"], gen["created"])
            now = time.time()
            if now < start:
                return "pending"
            if now < start + gen["duration"]:
                return "processing"
            return "failed" if gen["fail_reason"] else "completed"
        elapsed = time.time() - gen["created"]
        if elapsed < gen["duration"] * 0.3:
            return "pending"
        if elapsed < gen["duration"]:
            return "processing"
        return "failed" if gen["fail_reason"] else "completed"

    def _sign(self, gen_id: str, n: int, expires: int) -> str:
        return hashlib.sha256(f"{gen_id}/{n}/{expires}/sim-secret".encode()).hexdigest()[:16]

    def _url(self, gen_id: str, n: int) -> str:
        expires = int(time.time() + self.url_ttl)
        sig = self._sign(gen_id, n, expires)
        return f"{self.url}/r2/{gen_id}/{n}?X-Amz-Expires={expires}&X-Amz-Signature={sig}"

    def _object(self, gen: dict[str, Any]) -> dict[str, Any]:
        status = self._status(gen)
        obj = {
            "id": gen["id"],
            "modelId": "mod_" + hashlib.sha1(gen["model"].encode()).hexdigest()[:12],
            "serverId": "srv_sim01",
            "status": status,
            "reason": gen["fail_reason"] if status == "failed" else "",
            "requestBody": base64.b64encode(json.dumps(gen["body"]).encode()).decode(),
            "outputImages": [],
            "outputs": [],
        }
        if status == "completed":
            obj["outputImages"] = [
                {
                    "id": f"ima_{gen['id'][4:]}_{n}",
                    "projectId": "pro_sim",
                    "imageGenerationId": gen["id"],
                    "url": self._url(gen["id"], n),
                }
                for n in range(gen["count"])
            ]
            obj["outputs"] = [{"url": self._url(gen["id"], 0)}]
        if self.legacy_fields:
            obj["user"], obj["clusterId"] = gen["user"], obj["modelId"]
        return obj

    def _used(self, user: str, model: str, since: float) -> int:
        return sum(
            1
            for g in list(self.generations.values())
            if g["user"] == user and g["model"] == model and g["created"] >= since
        )

    def _remaining(self, user: str, model: str) -> dict[str, int] | None:
        if self.daily_limit is None and self.monthly_limit is None:
            return None
        now = time.time()
        day = (self.daily_limit or 10**9) - self._used(user, model, now - 86400)
        month = (self.monthly_limit or 10**9) - self._used(user, model, now - 30 * 86400)
        return {"remaining": max(0, day), "remainingThisMonth": max(0, month)}

    # --- routes ----------------------------------------------------------------------------

    def create(self, request: Request) -> Response:
        model = (
            request.header("x-model")
            or request.header("x-cluster")
            or request.query.get("model")
            or request.query.get("cluster", "")
        )
        user = request.header("x-user") or request.query.get("user", "")
        if not model:
            return Response(400, {"error": "model is required (X-Model header or ?model=)"})
        body = request.json
        if body is None and request.body:
            return Response(400, {"error": "body is not valid JSON"})
        if self.daily_limit is not None or self.monthly_limit is not None:
            if not user:
                return Response(400, {"error": "X-User header is required when limits are enabled"})
            left = self._remaining(user, model)
            if left and (left["remaining"] <= 0 or left["remainingThisMonth"] <= 0):
                return Response(
                    429,
                    {
                        "error": "user generation limit exceeded",
                        "message": f"Daily limit reached for user {user}",
                    },
                )
        is_async = request.header("x-async", "false").lower() == "true"
        gen = self._new(model, user, body, is_async, request.header("x-priority"))
        _, problem = self.fetch_photo(body)
        if problem:
            gen["fail_reason"] = problem
        if not is_async and gen["duration"]:
            time.sleep(gen["duration"])  # sync mode holds the request until done
        return Response(200, self._object(gen))

    def list(self, request: Request) -> Response:
        q = request.query
        model = q.get("model") or q.get("cluster") or ""
        items = sorted(self.generations.values(), key=lambda g: (-g["created"], g["id"]))
        items = [
            g
            for g in items
            if (not model or g["model"] == model)
            and (not q.get("user") or g["user"] == q["user"])
            and (not q.get("id") or g["id"] == q["id"])
        ]
        objects = [self._object(g) for g in items]
        if q.get("status"):
            objects = [o for o in objects if o["status"] == q["status"]]
        try:
            size = max(1, min(200, int(q.get("pageSize") or 20)))
        except ValueError:
            return Response(400, {"error": "pageSize must be a number"})
        try:
            start = (
                int(base64.urlsafe_b64decode(q["pageToken"]).decode()) if q.get("pageToken") else 0
            )
        except (ValueError, UnicodeDecodeError):
            return Response(400, {"error": "invalid pageToken"})
        page = objects[start : start + size]
        token = lambda offset: base64.urlsafe_b64encode(str(offset).encode()).decode()  # noqa: E731
        return Response(
            200,
            {
                "results": page,
                "pagination": {
                    "pageSize": size,
                    "nextPageToken": token(start + size) if start + size < len(objects) else "",
                    "previousPageToken": token(max(0, start - size)) if start else "",
                },
            },
        )

    def get_one(self, request: Request) -> Response:
        gen = self.generations.get(request.match["id"])
        if gen is None:
            return Response(404, {"error": "generation not found"})
        return Response(200, self._object(gen))

    def remaining(self, request: Request) -> Response:
        left = self._remaining(
            request.query.get("user", ""),
            request.query.get("model") or request.query.get("cluster", ""),
        )
        if left is None:
            return Response(404, {"error": "no limits configured for this model"})
        return Response(200, left)

    def output(self, request: Request) -> Response:
        gen = self.generations.get(request.match["id"])
        n = int(request.match["n"])
        try:
            expires = int(request.query.get("X-Amz-Expires", "0"))
        except ValueError:
            expires = 0
        if gen is None or request.query.get("X-Amz-Signature") != self._sign(gen["id"], n, expires):
            return Response(
                403,
                "<Error><Code>SignatureDoesNotMatch</Code></Error>",
                content_type="application/xml",
            )
        if self.expire_urls or time.time() > expires:
            return Response(
                403,
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                content_type="application/xml",
            )
        image = self.image_bytes(gen["id"], n)
        if self.output_mode == "json":
            data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
            return Response(200, {"image": data_uri})
        return Response(200, image, content_type="image/png")


def ulid(seconds: float) -> str:
    """A ULID (48-bit milliseconds, then 80 random bits, Crockford base32), as Meteron's ids."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = (int(seconds * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))
