"""Scenario simulator — TEST EQUIPMENT, not a provider. Serves Scenario's job API on loopback.

Faithful to ../shared/providers/PROTOCOLS.md §2 "What a faithful Scenario simulator must do" and
its Corrections, and to the official SDK (PyPI scenario-sdk 2.4.0): HTTP Basic key:secret (401
otherwise); POST /generate/custom/{modelId} → {"job": {jobId, status, …}, "creativeUnitsCost",
…} (`dryRun` → 269 with the cost; unknown model → 404); the body is checked against the
model's `inputs` (GET /models/{id}): an input the model does not take is a 400 (scenario-labs/
skills `skills/scenario-image/SKILL.md`: "unknown fields are rejected"), the image count is
`numOutputs` (Corrections), and a file input must name an asset of the project. POST /assets
{"image": base64 or data URL, "name"} stores the bytes (docs.scenario.com/docs/uploading-assets;
SDK `types/asset_upload_params.py`, `asset_upload_response.py`) and records them in `uploads`.
GET /jobs/{id} walks pending → queued → warming-up → in-progress → finalizing → success by
elapsed time (`job_duration`; statuses from SDK `types/job_retrieve_response.py`), updating
progress and statusHistory, or ends `failure` with metadata.error (`fail_reason`); GET
/assets/{id} → a signed URL serving the bytes (which can be expired with `expire_urls`); POST
/jobs/{id}/action cancel (refused with 400 like most generation jobs unless `cancel_allowed`);
optional 429 with details.actionName/actionLimit above `max_concurrent_jobs`. `legacy_job_id`
answers `job.id` instead of `job.jobId`. Every request is recorded (see Simulator.requests).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import itertools
import re
import threading
import time
from typing import Any

from tests.simulators.base import Request, Response, Simulator, png_bytes

API_KEY = "sim-scenario-key"
API_SECRET = "sim-scenario-secret"
# The running statuses in the SDK's enum order (`types/job_retrieve_response.py`: pending, queued,
# warming-up, in-progress, finalizing; then success | failure | canceled), as fractions of
# `job_duration`.
WALK = (
    ("pending", 0),
    ("queued", 0.1),
    ("warming-up", 0.25),
    ("in-progress", 0.4),
    ("finalizing", 0.85),
)  # noqa: E501
# A model's `inputs` as GET /models/{id} lists them (SDK `types/model_retrieve_response.py`
# fields name/type/min/max/default/required; file inputs take asset ids).
TEXT_INPUTS = [
    {"name": "prompt", "type": "string", "required": {"always": True}},
    {"name": "aspectRatio", "type": "string", "allowedValues": ["1:1", "4:3", "16:9", "9:16"]},
    {"name": "numOutputs", "type": "number", "min": 1, "max": 4, "default": 1},
    {"name": "seed", "type": "number"},
]
MODELS = {
    "model_sim-flux": [
        *TEXT_INPUTS,
        {"name": "negativePrompt", "type": "string"},
        {"name": "width", "type": "number", "min": 256, "max": 2048},
        {"name": "height", "type": "number", "min": 256, "max": 2048},
        {"name": "guidance", "type": "number", "min": 1, "max": 10},
    ],
    "model_imagen4-ultra": TEXT_INPUTS,
    "model_sim-kontext": [*TEXT_INPUTS, {"name": "image", "type": "file", "kind": "image"}],
}
COUNT_NAMES = ("numOutputs", "numImages", "numSamples")  # numSamples: legacy txt2img
DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class ScenarioSimulator(Simulator):
    name = "scenario"

    def __init__(self, *args, **kwargs):
        self.credentials = (API_KEY, API_SECRET)
        self.models: dict[str, list[dict[str, Any]]] = copy.deepcopy(MODELS)
        self.uploads: dict[str, bytes] = {}  # asset id → the bytes POST /assets received
        self.job_duration = 0.0
        self.fail_reason: str | None = None
        self.cancel_allowed = False
        self.legacy_job_id = False
        self.expire_urls = False
        self.max_concurrent_jobs: int | None = None
        # A fault: the job is created but the 200 reply is this body instead (a proxy's page, an
        # API change). Not Scenario's documented reply: only for testing what a client does.
        self.create_reply: Any = None
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
            ("POST", r"/assets", self.upload_asset),
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
        if not isinstance(body, dict):
            return bad_request("The request body must be a JSON object")
        refusal = self._check_inputs(self.models[model], body)
        if refusal is not None:
            return refusal
        if request.query.get("dryRun") in ("true", "api"):
            return Response(269, {"creativeUnitsCost": 5, "creativeUnitsDiscount": 0})
        running = [j for j in self.jobs.values() if self._walk(j)[0] in dict(WALK)]
        if self.max_concurrent_jobs is not None and len(running) >= self.max_concurrent_jobs:
            details = {"actionName": "parallel-inference", "actionLimit": self.max_concurrent_jobs}
            body = {"error": "Too Many Requests", "message": "Limit reached", "details": details}
            return Response(429, body)
        with self._state_lock:
            n = next(self._ids)
        counts = [i for i in self.models[model] if i["name"] in COUNT_NAMES]
        count = int(body.get(counts[0]["name"], counts[0].get("default", 1))) if counts else 1
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
        if self.create_reply is not None:
            return Response(200, self.create_reply)
        return Response(
            200,
            {
                "job": self._job(job),
                "creativeUnitsCost": 5,
                "creativeUnitsDiscount": 0,
                "costDetails": {"custom-generation": 5},
            },
        )

    def _check_inputs(self, inputs: list[dict[str, Any]], body: dict[str, Any]) -> Response | None:
        """The body against the model's inputs. The refusal's words are [inferred]: Scenario
        documents that unknown fields and off-range values are rejected with a 400 (scenario-labs/
        skills `skills/scenario-image/SKILL.md`, `skills/scenario/SKILL.md`), not the text."""
        by_name = {i["name"]: i for i in inputs}
        for name in body:
            if name not in by_name:
                return bad_request(f"Invalid input: the model has no input named '{name}'")
        for spec in inputs:
            name, value = spec["name"], body.get(spec["name"])
            if value is None:
                if (spec.get("required") or {}).get("always"):
                    return bad_request(f"Invalid input: '{name}' is required")
                continue
            if spec["type"] == "number":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return bad_request(f"Invalid input: '{name}' must be a number")
                if not spec.get("min", value) <= value <= spec.get("max", value):
                    return bad_request(
                        f"Invalid input: '{name}' must be between {spec['min']} and {spec['max']}"
                    )
            if "allowedValues" in spec and value not in spec["allowedValues"]:
                return bad_request(
                    f"Invalid input: '{name}' must be one of {spec['allowedValues']}"
                )
            if spec["type"] == "file" and value not in self.assets:
                # File inputs take asset ids of the project (scenario-labs/skills
                # `skills/scenario/SKILL.md`); an id that names no asset cannot be read.
                return bad_request(f"Invalid input: '{name}': asset {value} not found")
        return None

    def upload_asset(self, request: Request) -> Response:
        """POST /assets: `name` required; `image` "in base64 format string" (SDK
        `asset_upload_params.py`), which Scenario's own Unity plugin sends as a data URL
        (scenario-labs/Scenario-Unity `CommonUtils.UploadTexture`): both are read. Small images
        only (< 6 MB, docs.scenario.com/docs/uploading-assets; the refusal's status for a larger
        one is [unknown], a 400 here)."""
        body = request.json if isinstance(request.json, dict) else {}
        if not isinstance(body.get("name"), str) or not body["name"]:
            return bad_request("name is required")
        image = body.get("image")
        if not isinstance(image, str) or not image:
            return bad_request("image is required")
        match = DATA_URL.match(image)
        try:
            data = base64.b64decode(image[match.end() if match else 0 :], validate=True)
        except (binascii.Error, ValueError):
            return bad_request("image must be a base64 string")
        if len(data) >= 6 * 1024 * 1024:
            return bad_request("Images of 6MB or more must go through /uploads")
        with self._state_lock:
            asset_id = f"asset_up{next(self._ids):06d}"
        mime = match["type"] if match else "application/octet-stream"
        self.uploads[asset_id] = data
        self.assets[asset_id] = {"data": data, "mime": mime, "name": body["name"]}
        return Response(200, {"asset": self._asset(asset_id, source="uploaded")})

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

    def _asset(self, asset_id: str, source: str) -> dict[str, Any]:
        asset = self.assets[asset_id]
        metadata = {"jobId": asset["job"]} if "job" in asset else {"name": asset.get("name")}
        return {
            "id": asset_id,
            "url": self._signed(asset_id),
            "mimeType": asset.get("mime", "image/png"),
            "kind": "image",
            "status": "success",
            "source": source,
            "metadata": metadata,
            "createdAt": _iso(time.time()),
        }

    def get_asset(self, request: Request) -> Response:
        asset_id = request.match["id"]
        if asset_id not in self.assets:
            return Response(404, {"error": "Not Found", "message": "Asset not found"})
        source = "inference" if "job" in self.assets[asset_id] else "uploaded"
        return Response(200, {"asset": self._asset(asset_id, source)})

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
        asset = self.assets[asset_id]
        if "data" in asset:  # an uploaded asset serves what was uploaded
            return Response(200, asset["data"], content_type=asset["mime"])
        colour = (90, 30 + 50 * asset["n"] % 200, 160)
        return Response(200, png_bytes(80, 64, colour=colour), content_type="image/png")

    def get_model(self, request: Request) -> Response:
        model = request.match["id"]
        if model not in self.models:
            return Response(404, {"error": "Not Found", "message": f"Model {model} not found"})
        capabilities = ["txt2img"] + (
            ["img2img"] if any(i["type"] == "file" for i in self.models[model]) else []
        )
        return Response(
            200,
            {
                "model": {
                    "id": model,
                    "type": "custom",
                    "status": "trained",
                    "capabilities": capabilities,
                    "inputs": self.models[model],
                }
            },
        )


def bad_request(message: str) -> Response:
    # Scenario's envelope: {"error": <reason phrase>, "message": <words>} (PROTOCOLS.md §2).
    return Response(400, {"error": "Bad Request", "message": message})
