"""Scenario simulator — TEST EQUIPMENT, not a provider. Serves Scenario's job API on loopback.

Faithful to ../shared/providers/PROTOCOLS.md §2 "What a faithful Scenario simulator must do":
HTTP Basic key:secret (401 otherwise); POST /generate/custom/{modelId} → {"job": {jobId,
status "queued", …}, "creativeUnitsCost", …} (`dryRun` → 269 with the cost; unknown model →
404); GET /jobs/{id} walks queued → warming-up → in-progress → finalizing → success by elapsed
time (`job_duration`), updating progress and statusHistory, or ends `failure` with
metadata.error (`fail_reason`); GET /assets/{id} → a signed URL serving PNG bytes (which can be
expired with `expire_urls`); GET /models/{id} with `inputs`; POST /jobs/{id}/action cancel
(refused with 400 like most generation jobs unless `cancel_allowed`); optional 429 with
details.actionName/actionLimit above `max_concurrent_jobs`. `legacy_job_id` answers `job.id`
instead of `job.jobId`. Every request is recorded (see Simulator.requests).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time
from typing import Any

from tests.simulators.base import Request, Response, Simulator, png_bytes

API_KEY = "sim-scenario-key"
API_SECRET = "sim-scenario-secret"
WALK = (("queued", 0.0), ("warming-up", 0.2), ("in-progress", 0.4), ("finalizing", 0.85))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class ScenarioSimulator(Simulator):
    name = "scenario"

    def __init__(self, *args, **kwargs):
        self.credentials = (API_KEY, API_SECRET)
        self.models = {"model_sim-flux", "model_imagen4-ultra"}
        self.job_duration = 0.0
        self.fail_reason: str | None = None
        self.cancel_allowed = False
        self.legacy_job_id = False
        self.expire_urls = False
        self.max_concurrent_jobs: int | None = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._state_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @classmethod
    def env_vars(cls, url: str) -> dict[str, str]:
        return {
            "SCENARIO_BASE_URL": url,
            "SCENARIO_API_KEY": API_KEY,
            "SCENARIO_API_SECRET": API_SECRET,
        }

    def routes(self):
        return [
            ("POST", r"/generate/custom/(?P<model>[^/]+)", self.generate),
            ("GET", r"/jobs", self.list_jobs),
            ("GET", r"/jobs/(?P<id>[^/]+)", self.get_job),
            ("POST", r"/jobs/(?P<id>[^/]+)/action", self.action),
            ("GET", r"/assets/(?P<id>[^/]+)", self.get_asset),
            ("GET", r"/models/(?P<id>[^/]+)", self.get_model),
            ("GET", r"/signed/(?P<id>[^/]+)\.png", self.asset_bytes),
        ]

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/signed/"):
            return True
        auth = request.header("authorization")
        if not auth.startswith("Basic "):
            return False
        try:
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return (key, secret) == self.credentials

    def unauthorized(self, request: Request) -> Response:
        return Response(401, {"error": "Unauthorized", "message": "Invalid API key or secret"})

    def submissions(self) -> list[Request]:
        return self.received("POST", r"^/generate/custom/")

    # --- state -----------------------------------------------------------------------------

    def _walk(self, job: dict[str, Any]) -> tuple[str, float, list[dict[str, str]]]:
        if job.get("canceled_at"):
            history = [
                {"status": "queued", "date": _iso(job["created"])},
                {"status": "canceled", "date": _iso(job["canceled_at"])},
            ]
            return "canceled", 0.0, history
        elapsed = time.time() - job["created"]
        duration = job["duration"]
        fraction = 1.0 if duration <= 0 else min(1.0, elapsed / duration)
        history = []
        status = "queued"
        for name, start in WALK:
            if fraction >= start:
                status = name
                history.append({"status": name, "date": _iso(job["created"] + start * duration)})
        if fraction >= 1.0:
            status = "failure" if job["fail_reason"] else "success"
            history.append({"status": status, "date": _iso(job["created"] + duration)})
        return status, round(fraction if status not in ("success", "failure") else 1.0, 3), history

    def _job(self, job: dict[str, Any]) -> dict[str, Any]:
        status, progress, history = self._walk(job)
        metadata: dict[str, Any] = {"input": job["input"], "assetIds": []}
        if status == "success":
            with self._state_lock:
                if not job["asset_ids"]:
                    for n in range(job["count"]):
                        asset_id = f"asset_sim{job['n']:05d}{n}"
                        self.assets[asset_id] = {"job": job["id"], "n": n}
                        job["asset_ids"].append(asset_id)
            metadata["assetIds"] = list(job["asset_ids"])
        elif status == "failure":
            metadata["error"] = job["fail_reason"]
            metadata["hint"] = "Try another prompt."
        key = "id" if self.legacy_job_id else "jobId"
        return {
            key: job["id"],
            "jobType": "inference",
            "status": status,
            "progress": progress,
            "metadata": metadata,
            "statusHistory": history,
            "createdAt": _iso(job["created"]),
            "updatedAt": _iso(time.time()),
            "ownerId": "proj_sim",
            "authorId": "user_sim",
            "billing": {"cuCost": 5, "cuDiscount": 0},
        }

    # --- routes ----------------------------------------------------------------------------

    def generate(self, request: Request) -> Response:
        model = request.match["model"]
        if model not in self.models:
            return Response(404, {"error": "Not Found", "message": f"Model {model} not found"})
        body = request.json
        if not isinstance(body, dict) or not body.get("prompt"):
            return Response(400, {"error": "Bad Request", "message": "prompt is required"})
        if request.query.get("dryRun") in ("true", "api"):
            return Response(269, {"creativeUnitsCost": 5, "creativeUnitsDiscount": 0})
        if self.max_concurrent_jobs is not None:
            running = [
                j
                for j in self.jobs.values()
                if self._walk(j)[0] not in ("success", "failure", "canceled")
            ]
            if len(running) >= self.max_concurrent_jobs:
                return Response(
                    429,
                    {
                        "error": "Too Many Requests",
                        "message": "Limit reached",
                        "details": {
                            "actionName": "parallel-inference",
                            "actionLimit": self.max_concurrent_jobs,
                        },
                    },
                )
        with self._state_lock:
            n = next(self._ids)
        try:
            count = max(1, min(8, int(body.get("numImages", 1))))
        except (TypeError, ValueError):
            return Response(400, {"error": "Bad Request", "message": "numImages must be a number"})
        job = {
            "id": f"job_sim{n:06d}",
            "n": n,
            "model": model,
            "input": body,
            "created": time.time(),
            "duration": self.job_duration,
            "fail_reason": self.fail_reason,
            "count": count,
            "asset_ids": [],
        }
        self.jobs[job["id"]] = job
        return Response(
            200,
            {
                "job": self._job(job),
                "creativeUnitsCost": 5,
                "creativeUnitsDiscount": 0,
                "costDetails": {"custom-generation": 5},
            },
        )

    def list_jobs(self, request: Request) -> Response:
        try:
            size = max(1, min(100, int(request.query.get("pageSize") or 50)))
        except ValueError:
            return Response(400, {"error": "Bad Request", "message": "pageSize must be 1-100"})
        jobs = [self._job(j) for j in sorted(self.jobs.values(), key=lambda j: -j["created"])]
        return Response(200, {"jobs": jobs[:size], "nextPaginationToken": ""})

    def get_job(self, request: Request) -> Response:
        job = self.jobs.get(request.match["id"])
        if job is None:
            return Response(404, {"error": "Not Found", "message": "Job not found"})
        return Response(200, {"job": self._job(job)})

    def action(self, request: Request) -> Response:
        job = self.jobs.get(request.match["id"])
        if job is None:
            return Response(404, {"error": "Not Found", "message": "Job not found"})
        if (request.json or {}).get("action") != "cancel":
            return Response(400, {"error": "Bad Request", "message": "Unknown action"})
        if not self.cancel_allowed:
            return Response(
                400, {"error": "Bad Request", "message": "Cannot cancel this type of job"}
            )
        job["canceled_at"] = time.time()
        return Response(200, {"job": self._job(job)})

    def _signed(self, asset_id: str) -> str:
        expires = int(time.time() + 3600)
        sig = hashlib.sha256(f"{asset_id}/{expires}".encode()).hexdigest()[:16]
        return f"{self.url}/signed/{asset_id}.png?Expires={expires}&Signature={sig}"

    def get_asset(self, request: Request) -> Response:
        asset_id = request.match["id"]
        if asset_id not in self.assets:
            return Response(404, {"error": "Not Found", "message": "Asset not found"})
        return Response(
            200,
            {
                "asset": {
                    "id": asset_id,
                    "url": self._signed(asset_id),
                    "mimeType": "image/png",
                    "kind": "image",
                    "status": "success",
                    "source": "inference",
                    "metadata": {"jobId": self.assets[asset_id]["job"]},
                    "createdAt": _iso(time.time()),
                }
            },
        )

    def asset_bytes(self, request: Request) -> Response:
        asset_id = request.match["id"]
        try:
            expires = int(request.query.get("Expires", "0"))
        except ValueError:
            expires = 0
        sig = hashlib.sha256(f"{asset_id}/{expires}".encode()).hexdigest()[:16]
        if asset_id not in self.assets or request.query.get("Signature") != sig:
            return Response(
                403, "<Error><Code>AccessDenied</Code></Error>", content_type="application/xml"
            )
        if self.expire_urls or time.time() > expires:
            return Response(
                403,
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                content_type="application/xml",
            )
        n = self.assets[asset_id]["n"]
        return Response(
            200, png_bytes(80, 64, colour=(90, 30 + 50 * n % 200, 160)), content_type="image/png"
        )

    def get_model(self, request: Request) -> Response:
        model = request.match["id"]
        if model not in self.models:
            return Response(404, {"error": "Not Found", "message": f"Model {model} not found"})
        return Response(
            200,
            {
                "model": {
                    "id": model,
                    "type": "custom",
                    "status": "trained",
                    "capabilities": ["txt2img"],
                    "inputs": [
                        {"name": "prompt", "type": "string", "required": {"always": True}},
                        {"name": "negativePrompt", "type": "string"},
                        {
                            "name": "aspectRatio",
                            "type": "string",
                            "allowedValues": ["1:1", "4:3", "3:4", "9:16", "16:9"],
                        },
                        {"name": "width", "type": "number", "min": 256, "max": 2048},
                        {"name": "height", "type": "number", "min": 256, "max": 2048},
                        {"name": "numImages", "type": "number", "min": 1, "max": 8, "default": 1},
                        {"name": "seed", "type": "number"},
                    ],
                }
            },
        )
