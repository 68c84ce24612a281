"""Scenario (api.cloud.scenario.com/v1): asynchronous jobs on custom and third-party models.

Protocol (see ../shared/providers/PROTOCOLS.md §2):
- POST /generate/custom/{modelId} with HTTP Basic (API key : secret). The body's fields come
  from the model's `inputs`; Easel sends `params["body"]` (a template) merged with prompt,
  negativePrompt, seed, width/height or aspectRatio and numImages.
- The reply carries `job.jobId` (some guides show `job.id`; both are read).
- GET /jobs/{id} walks pending → queued → warming-up → in-progress → finalizing → success |
  failure | canceled, with `progress` 0–1 and `metadata.assetIds` / `metadata.error`.
- Each asset id → GET /assets/{id} → `asset.url` (a signed URL) → bytes.
- Scenario's API has no field for the end user: the tag (the user's public id) is kept in
  Easel's own records (Generation.tag_sent), not sent to Scenario.
"""

from __future__ import annotations

import base64
import copy
import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    Pending,
    ProviderError,
    generation_inputs,
    provider_setting,
)

if TYPE_CHECKING:
    from generator.models import Generation

RUNNING_STATUSES = {"pending", "queued", "warming-up", "in-progress", "finalizing", "processing"}
FAILED_STATUSES = {"failure", "failed"}  # "failed" appears in guides; the enum says "failure"


# Scenario's field names for Easel's neutral ones (generation_inputs).
SCENARIO_NAMES = {
    "negative_prompt": "negativePrompt",
    "aspect_ratio": "aspectRatio",
    "num_images": "numImages",
}


def build_body(gen: Generation) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy((gen.model.params or {}).get("body") or {})
    body.update((SCENARIO_NAMES.get(k, k), v) for k, v in generation_inputs(gen).items())
    return body


def job_of(body: Any) -> dict[str, Any]:
    job = body.get("job") if isinstance(body, dict) else None
    if not isinstance(job, dict):
        raise ProviderError("Scenario's reply did not describe a job.", retryable=True)
    return job


def job_id_of(job: dict[str, Any]) -> str:
    return str(job.get("jobId") or job.get("id") or "")


def _progress(job: dict[str, Any]) -> float | None:
    try:
        return max(0.0, min(0.99, float(job.get("progress"))))
    except (TypeError, ValueError):
        return None


class ScenarioProvider(HttpProvider):
    name = "scenario"
    label = "Scenario"
    supports_cancel = True

    @functools.cached_property
    def api_secret(self) -> str:
        return provider_setting(self.name, "api_secret")

    def is_configured(self) -> bool:
        return bool(self.api_key and self.api_secret)

    def auth_headers(self) -> dict[str, str]:
        pair = f"{self.api_key}:{self.api_secret}"
        return {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/json",
        }

    # Scenario's envelope: {"error": "Not Found", "message": "<the useful words>", "details"}.
    message_keys = ("message", *HttpProvider.message_keys)

    def error_message(self, response: httpx.Response) -> str:
        message = super().error_message(response)
        try:
            body = response.json()
        except ValueError:
            return message
        details = body.get("details") if isinstance(body, dict) else None
        if isinstance(details, dict) and details.get("actionName"):
            message += f" ({details['actionName']}, limit {details.get('actionLimit', '?')})"
        return message

    def submit(self, gen: Generation) -> Pending:
        model_id = quote(gen.model.remote_id, safe="")
        response = self.request("POST", f"/generate/custom/{model_id}", json=build_body(gen))
        job = job_of(self.json(response, accepted=True))
        job_id = job_id_of(job)
        if not job_id:
            raise ProviderError("Scenario accepted the request without a job id.")
        return Pending(
            job_id=job_id, progress=_progress(job), state={"status": job.get("status", "")}
        )

    def check(self, gen: Generation) -> Done | Pending | Failed:
        job_id = quote(gen.provider_job_id, safe="")
        job = job_of(self.json(self.request("GET", f"/jobs/{job_id}")))
        status = str(job.get("status") or "").lower()
        metadata = job.get("metadata") if isinstance(job.get("metadata"), dict) else {}
        if status == "success":
            asset_ids = [str(a) for a in metadata.get("assetIds") or []]
            if not asset_ids:
                return Failed("Scenario finished the job without any image.")
            return Done(images=[ImageOutput(url=self.asset_url(a)) for a in asset_ids])
        if status in FAILED_STATUSES:
            reason = metadata.get("error") or "the job failed."
            hint = metadata.get("hint")
            return Failed(f"Scenario: {reason}" + (f" ({hint})" if hint else ""))
        if status in ("canceled", "cancelled"):
            return Failed(
                f"Scenario canceled the job. {metadata.get('error') or ''}".strip(), canceled=True
            )
        # Running statuses and any status Scenario adds later: keep polling until the deadline.
        return Pending(
            job_id=gen.provider_job_id, progress=_progress(job), state={"status": status}
        )

    def asset_url(self, asset_id: str) -> str:
        body = self.json(self.request("GET", f"/assets/{quote(asset_id, safe='')}"))
        asset = body.get("asset") if isinstance(body, dict) else None
        url = asset.get("url") if isinstance(asset, dict) else None
        if not url:
            raise ProviderError(f"Scenario's asset {asset_id} has no URL yet.", retryable=True)
        return str(url)

    def cancel(self, gen: Generation) -> None:
        """Best effort: most generation jobs refuse with 400 "Cannot cancel this type of job"."""
        self.request(
            "POST",
            f"/jobs/{quote(gen.provider_job_id, safe='')}/action",
            json={"action": "cancel"},
        )

    def check_connection(self) -> str:
        body = self.json(self.request("GET", "/jobs", params={"pageSize": 1}))
        if not isinstance(body, dict):
            raise ProviderError("Scenario answered, but not with a job listing.")
        return (
            f"Connected to Scenario at {httpx.URL(self.base_url).host}; the API key was accepted. "
            "(Scenario has no end-user field: the user tag is kept in Easel's records only.)"
        )
