"""Scenario (api.cloud.scenario.com/v1): asynchronous jobs on custom and third-party models.

Protocol (see ../shared/providers/PROTOCOLS.md §2 and its Corrections; docs/providers/scenario.md):
- POST /generate/custom/{modelId} with HTTP Basic (API key : secret). The body's fields come
  from the model's `inputs` (scenario-sdk 2.4.0 `types/generate_run_model_params.py`: "must be
  retrieve[d] from GET /models/{modelId} inputs fields"); Easel sends `params["body"]` (a
  template) merged with prompt, negativePrompt, seed, width/height or aspectRatio and the image
  count under `params["num_outputs_field"]` (default `numOutputs`, per the Corrections table;
  "" = the model has no count input and none is sent).
- Unknown inputs are rejected, not ignored ("unknown fields are rejected", scenario-labs/skills
  `skills/scenario-image/SKILL.md`); the refusal is shown with Scenario's own words and the
  fields Easel sent, so staff can see which one to rename or drop.
- An input photo is uploaded first as an asset: POST /assets {"image": <base64>, "name"}
  (docs.scenario.com/docs/uploading-assets; scenario-sdk `resources/assets/assets.py` upload →
  `{"asset": {"id", …}}`), and the asset id goes in the model's image input (default `image`,
  `params["image_field"]` to rename; file inputs take asset ids, scenario-labs/skills
  `skills/scenario/SKILL.md`).
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
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from generator.providers.base import (
    Done,
    Failed,
    HttpProvider,
    ImageOutput,
    OutcomeUnknown,
    Pending,
    ProviderError,
    generation_inputs,
    provider_setting,
)
from generator.providers.photos import InputPhoto, data_uri, input_photo

if TYPE_CHECKING:
    from generator.models import Generation

RUNNING_STATUSES = {"pending", "queued", "warming-up", "in-progress", "finalizing", "processing"}
FAILED_STATUSES = {"failure", "failed"}  # "failed" appears in guides; the enum says "failure"

# Scenario's field names for Easel's neutral ones (generation_inputs); the count's name is a
# per-model param (count_field).
SCENARIO_NAMES = {"negative_prompt": "negativePrompt", "aspect_ratio": "aspectRatio"}
COUNT_FIELD = "numOutputs"
IMAGE_FIELD = "image"
# POST /assets takes "small images (< 6MB)"; larger files need the multipart /v1/uploads flow
# (docs.scenario.com/docs/uploading-assets), which Easel does not implement.
ASSET_UPLOAD_MAX_BYTES = 6 * 1024 * 1024


def count_field(model) -> str:
    """The model's image-count input: numOutputs unless params say otherwise ("" = none)."""
    value = (model.params or {}).get("num_outputs_field", COUNT_FIELD)
    return value if isinstance(value, str) else COUNT_FIELD


def image_field(model) -> str:
    value = (model.params or {}).get("image_field", IMAGE_FIELD)
    return value if isinstance(value, str) else ""


def build_body(gen: Generation, asset_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy((gen.model.params or {}).get("body") or {})
    inputs = generation_inputs(gen)
    count = inputs.pop("num_images")
    body.update((SCENARIO_NAMES.get(k, k), v) for k, v in inputs.items())
    field = count_field(gen.model)
    if field:
        body[field] = count
    elif count > 1:
        raise ProviderError(
            f"This Scenario model takes no image count, so it cannot make {count} images; "
            "nothing was sent."
        )
    if asset_id:
        body[image_field(gen.model)] = asset_id
    return body


def job_of(body: Any, *, accepted: bool = False) -> dict[str, Any]:
    """The job in a reply. `accepted`: the reply to the create POST after a 2xx — Scenario
    took the request (and may bill it), so a reply without a job is final, never re-sent."""
    job = body.get("job") if isinstance(body, dict) else None
    if isinstance(job, dict):
        return job
    if accepted:
        raise OutcomeUnknown(
            "Scenario accepted the request but its reply did not describe a job; it was not "
            "sent again, so you are not charged twice. Use Retry to try again."
        )
    raise ProviderError("Scenario's reply did not describe a job.", retryable=True)


def job_id_of(job: dict[str, Any]) -> str:
    return str(job.get("jobId") or job.get("id") or "")


def _sent_fields(response: httpx.Response) -> list[str]:
    """The input names of the generate request a refusal answers (for a readable error)."""
    try:
        request = response.request
    except RuntimeError:  # a Response built without a request (tests of the envelope)
        return []
    if request.method != "POST" or "/generate/custom/" not in request.url.path:
        return []
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return []
    return sorted(body) if isinstance(body, dict) else []


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
            body = None
        details = body.get("details") if isinstance(body, dict) else None
        if isinstance(details, dict) and details.get("actionName"):
            message += f" ({details['actionName']}, limit {details.get('actionLimit', '?')})"
        if response.status_code in (400, 422):
            # Scenario rejects inputs the model does not take (scenario-labs/skills, see the
            # module docstring); its exact wording is undocumented, so the fields Easel sent
            # are named too: staff can match them against the model's `inputs`.
            fields = _sent_fields(response)
            if fields:
                message += f" (Easel sent: {', '.join(fields)})"
        return message

    def photo_problem(self, model) -> str:
        if not image_field(model):
            return (
                "Scenario needs the name of the model's image input to send the photo: set "
                'params "image_field" (for example "image") or remove it.'
            )
        return ""

    def options_errors(self, model) -> list[str]:
        params = model.params or {}
        errors = []
        if not isinstance(params.get("body", {}), dict):
            errors.append('Scenario params "body" must be an object of the model\'s inputs.')
        field = params.get("num_outputs_field", COUNT_FIELD)
        if not isinstance(field, str):
            errors.append('Scenario params "num_outputs_field" must be a field name or "".')
        elif not field and int((model.options or {}).get("max_images") or 1) > 1:
            errors.append(
                'This Scenario model takes no image count (num_outputs_field is ""): '
                "set max_images to 1."
            )
        return errors

    def upload_photo(self, photo: InputPhoto) -> str:
        """POST /assets with the photo as a data URL (the SDK: "The image to upload in base64
        format string"; Scenario's own Unity plugin sends `data:image/png;base64,…`,
        scenario-labs/Scenario-Unity `CommonUtils.UploadTexture`) → the asset id.

        Retries: an upload costs no compute units (Scenario's list of what consumes CU is
        generation, training, editing tools, detection, agent messages — help.scenario.com
        article 7157036624), and no generation has been asked for yet. So an upload whose reply
        was lost (timeout, dropped connection, unreadable 2xx) is a transient error: the whole
        submit is tried again later, within EASEL_MAX_TRANSIENT_RETRIES. The worst case is a
        duplicate, unused asset in the Scenario project, never a second charge."""
        if len(photo.data) >= ASSET_UPLOAD_MAX_BYTES:
            raise ProviderError(
                f"The photo is {len(photo.data) / 1_048_576:.1f} MB; Scenario's asset upload "
                "takes images under 6 MB. Nothing was sent to Scenario."
            )
        body = {"image": data_uri(photo), "name": photo.name}
        try:
            response = self.request("POST", "/assets", json=body)
        except OutcomeUnknown:
            raise ProviderError(
                "Scenario did not confirm the upload of the input photo; no image was asked "
                "for yet, so it will be tried again.",
                retryable=True,
            ) from None
        reply = self.json(response)  # unreadable → retryable: an upload bills nothing
        asset = reply.get("asset") if isinstance(reply, dict) else None
        asset_id = asset.get("id") if isinstance(asset, dict) else None
        if not asset_id:
            raise ProviderError(
                "Scenario's reply to the photo upload named no asset.", retryable=True
            )
        return str(asset_id)

    def submit(self, gen: Generation) -> Pending:
        build_body(gen)  # a body Easel cannot build fails before the photo goes up
        photo = input_photo(gen)
        asset_id = self.upload_photo(photo) if photo else None
        body = build_body(gen, asset_id)
        model_id = quote(gen.model.remote_id, safe="")
        response = self.request("POST", f"/generate/custom/{model_id}", json=body)
        job = job_of(self.json(response, accepted=True), accepted=True)
        job_id = job_id_of(job)
        if not job_id:
            raise OutcomeUnknown(
                "Scenario accepted the request without a job id, so Easel cannot follow it; it "
                "was not sent again, so you are not charged twice. Use Retry to try again."
            )
        state = {"status": job.get("status", "")}
        if asset_id:
            state["input_asset"] = asset_id
        return Pending(job_id=job_id, progress=_progress(job), state=state)

    # reconcile() stays the default (None): after a lost reply Easel cannot tell its job from
    # another. Scenario's job has no client reference or end-user field and its API takes no
    # idempotency key (scenario-sdk `_idempotency_header = None`); GET /jobs filters only by
    # status, type, author, dates and workflow (`types/job_list_params.py`), and every Easel
    # job runs under the same API key, so two users sending the same templated RoomFix prompt
    # would be indistinguishable. A wrong match would hand one user another's images.

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
