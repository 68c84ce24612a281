"""A minimal async image API that counts submissions per generation — TEST EQUIPMENT.

Used by the fault, worker-kill and secrets tests. `CountingSimProvider` is a test-only Provider
registered under the name "counting-sim" when this module is imported (the test process, or a
test worker started with `--include tests.simulators.counting`); the product never lists it.

Protocol (loopback only):
    POST /jobs/<generation public id>   {"prompt", "n", "size"}  -> {"id", "status": "running"}
    GET  /jobs/<job id>                 -> {"id", "status": "running"|"done"|"failed", "images": [...]}
    GET  /img/<job id>/<n>.png          -> PNG bytes
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter

from django.conf import settings

from generator.providers import register
from generator.providers.base import Done, Failed, HttpProvider, ImageOutput, Pending

from .base import Request, Response, Simulator, png_bytes

URL_ENV = "EASEL_COUNTING_SIM_URL"
KEY_ENV = "EASEL_COUNTING_SIM_KEY"


class CountingSimulator(Simulator):
    name = "counting"

    def __init__(self, job_seconds: float = 0.0, api_key: str = "", **kw):
        self.job_seconds = job_seconds
        self.api_key = api_key
        self.submissions: Counter[str] = Counter()
        self.jobs: dict[str, dict] = {}
        self.image_404 = False  # outputs whose URLs have expired
        self._ids = iter(range(1, 10**9))
        self._id_lock = threading.Lock()
        super().__init__(**kw)

    def routes(self):
        return [
            ("POST", r"/jobs/(?P<gen>[^/]+)", self.create),
            ("GET", r"/jobs/(?P<id>[^/]+)", self.get),
            ("GET", r"/img/(?P<id>[^/]+)/(?P<n>\d+)\.png", self.image),
        ]

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/img/"):
            return True  # output URLs work without the key, like presigned URLs
        return not self.api_key or request.header("authorization") == f"Bearer {self.api_key}"

    def create(self, request: Request) -> Response:
        body = request.json or {}
        with self._id_lock:
            job_id = f"job{next(self._ids)}"
            self.submissions[request.match["gen"]] += 1
            self.jobs[job_id] = {
                "gen": request.match["gen"],
                "n": int(body.get("n") or 1),
                "ready_at": time.monotonic() + self.job_seconds,
            }
        return Response(201, {"id": job_id, "status": "running"})

    def get(self, request: Request) -> Response:
        job = self.jobs.get(request.match["id"])
        if job is None:
            return Response(404, {"error": "no such job"})
        if time.monotonic() < job["ready_at"]:
            return Response(200, {"id": request.match["id"], "status": "running"})
        images = [f"/img/{request.match['id']}/{i}.png" for i in range(job["n"])]
        return Response(200, {"id": request.match["id"], "status": "done", "images": images})

    def image(self, request: Request) -> Response:
        if self.image_404 or request.match["id"] not in self.jobs:
            return Response(404, {"error": "expired"})
        return Response(200, png_bytes(64, 64), content_type="image/png")

    @property
    def duplicates(self) -> dict[str, int]:
        with self._id_lock:
            return {gen: n for gen, n in self.submissions.items() if n > 1}


@register
class CountingSimProvider(HttpProvider):
    """Test-only adapter for CountingSimulator. Its URL and key come from the environment."""

    name = "counting-sim"
    label = "Counting simulator (test equipment)"

    @functools.cached_property
    def base_url(self) -> str:
        conf = getattr(settings, "EASEL_PROVIDERS", {}).get(self.name, {})
        return (conf.get("base_url") or os.environ.get(URL_ENV, "")).rstrip("/")

    @functools.cached_property
    def api_key(self) -> str:
        conf = getattr(settings, "EASEL_PROVIDERS", {}).get(self.name, {})
        return conf.get("api_key") or os.environ.get(KEY_ENV, "")

    def is_configured(self) -> bool:
        return bool(self.base_url)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def submit(self, gen) -> Pending:
        body = {"prompt": gen.prompt, "n": gen.num_images, "size": gen.options.get("size")}
        # The POST starts (billable) work, as a real API's does: an unreadable reply is final.
        data = self.json(self.request("POST", f"/jobs/{gen.public_id}", json=body), accepted=True)
        return Pending(job_id=str(data["id"]), progress=0.0, poll_after=0.1)

    def check(self, gen) -> Done | Pending | Failed:
        data = self.json(self.request("GET", f"/jobs/{gen.provider_job_id}"))
        if data.get("status") == "done":
            return Done([ImageOutput(url=f"{self.base_url}{path}") for path in data["images"]])
        if data.get("status") == "failed":
            return Failed(str(data.get("error") or "failed"))
        return Pending(job_id=gen.provider_job_id, poll_after=0.1)
