"""Replicate predictions (docs/providers/replicate.md).

`POST /v1/predictions {"version", "input", "webhook", "webhook_events_filter"}` (or
`POST /v1/models/{owner}/{name}/predictions` for an "owner/name" model id) answers 201 with a
prediction; Easel polls `GET /v1/predictions/{id}` with backoff, and Replicate's signed
"completed" webhook (Standard Webhooks HMAC-SHA256) makes the same check run at once.
`params.wait` adds `Prefer: wait[=n]`. The photo goes into `params.image_input` ("image"): a
presigned URL on S3, else a data URI up to 256 kB or an upload through `POST /v1/files`. No user
field: the tag stays in Easel's records. References: Replicate's OpenAPI spec (tryAGI/Replicate
`src/libs/Replicate/openapi.json`), replicate-python, standardwebhooks 1.1.0."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.core.cache import cache

from generator.providers.base import (
    NOT_SENT_AGAIN,
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
from generator.providers.photos import data_uri, input_photo, input_photo_url

if TYPE_CHECKING:
    from django.http import HttpRequest

WEBHOOK_TOLERANCE = 300  # seconds; older or newer timestamps are refused as replays
SECRET_CACHE_KEY = "replicate:webhook-signing-key"
PROGRESS = {"starting": 0.05, "processing": 0.5}
# The spec's Prefer pattern (bare "wait" = 60 s); it lets 61–99 by, its text says 1–60: both hold.
PREFER_WAIT = re.compile(r"^wait(=([1-9]|[1-9][0-9]|60))?$")
WAIT_MARGIN = 2.0  # read for wait + this (replicate-python: + 0.5 s, _create_prediction_timeout)
DATA_URI_MAX_BYTES = 256_000  # "small file <= 256kb" (the create request's `input` description)
PHOTO_VIA = ("auto", "files")
# Only Replicate's own file hosts (and the configured API origin) get the token with a download:
# the spec says to send it, but a model's output may be any URL, which must never see it.
OWN_HOSTS = ("replicate.delivery", "api.replicate.com")
RECONCILE_PAGES = 10  # 100 predictions a page (spec predictions.list)
CLOCK_SKEW = timedelta(seconds=60)


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 signature Replicate puts after "v1," (Standard Webhooks). The key
    is decoded as standardwebhooks' `Webhook.__init__` does: `whsec_` stripped, then base64
    with "==" appended, so a secret without its padding works."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_signature(
    secret: str, headers: dict[str, str], body: bytes, now: float | None = None
) -> bool:
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (secret and webhook_id and timestamp and signatures):
        return False
    try:
        if abs((now or time.time()) - int(timestamp)) > WEBHOOK_TOLERANCE:
            return False
        expected = sign(secret, webhook_id, timestamp, body)
    except (binascii.Error, ValueError):
        return False
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (part.partition(",") for part in signatures.split())
    )


def prefer_wait(value: Any) -> str | None:
    """The `Prefer` header for a model's `params.wait` ("" = none): true → "wait" (60 s), a
    whole number 1–60 → "wait=n", or a string matching the spec's pattern; None if invalid."""
    if value is None or value is False or value == "":
        return ""
    if value is True:
        return "wait"
    if type(value) is int and 1 <= value <= 60:
        return f"wait={value}"
    valid = isinstance(value, str) and PREFER_WAIT.match(value) and wait_seconds(value) <= 60
    return value if valid else None


def wait_seconds(header: str) -> float:
    return float(header.partition("=")[2] or 60)


def input_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


PARAM_RULES = {  # what options_errors checks in a model's params, and what to do instead
    "wait": (
        lambda v: prefer_wait(v) is not None,
        'use true (up to 60 s), whole seconds 1–60 or "wait=n" (Prefer).',
    ),
    "image_input": (
        lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_]\w*", v) is not None,
        'the name of the model\'s image input, e.g. "image".',
    ),
    "photo_via": (lambda v: v in PHOTO_VIA, f"one of {', '.join(PHOTO_VIA)}."),
    "input": (lambda v: isinstance(v, dict), "an object of extra model inputs."),
    "outputs": (
        lambda v: isinstance(v, list) and v and all(type(i) is int and i >= 0 for i in v),
        "the output positions to keep, e.g. [1] for ControlNet's [control map, result].",
    ),
}


class ReplicateProvider(HttpProvider):
    name = "replicate"
    label = "Replicate"
    supports_cancel = True
    supports_webhooks = True
    # Problem-details JSON: {"title", "detail", "invalid_fields": [{"field", "description"}]}.
    message_keys = ("detail", *HttpProvider.message_keys)
    field_errors = ("invalid_fields", "field", "description")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _path(self, path: str) -> str:
        return path if self.base_url.endswith("/v1") else f"/v1{path}"

    # --- model settings ----------------------------------------------------------------

    def photo_problem(self, model) -> str:  # a URL, a data URI or an uploaded file: always
        return ""

    def options_errors(self, model) -> list[str]:
        params = model.params or {}
        return [
            f"params.{name} {params[name]!r}: {hint}"
            for name, (valid, hint) in PARAM_RULES.items()
            if name in params and not valid(params[name])
        ]

    def submit_seconds(self, gen) -> float:
        """With `Prefer: wait=n` Replicate holds the reply up to n s: the read waits longer."""
        base = float(settings.EASEL_PROVIDER_TIMEOUT)
        header = prefer_wait((gen.model.params or {}).get("wait"))
        return max(base, wait_seconds(header) + WAIT_MARGIN) if header else base

    def mode(self, model) -> str:
        header = prefer_wait((model.params or {}).get("wait"))
        line = super().mode(model)
        return (
            f"{line} With Prefer: {header}, a quick job answers in the reply." if header else line
        )

    # --- submit ------------------------------------------------------------------------

    def prediction_input(self, gen) -> dict[str, Any]:
        params = gen.model.params or {}
        data = generation_inputs(gen)
        if data.pop("num_images") > 1:
            data["num_outputs"] = gen.num_images
        if not gen.model.supports_seed:
            data.pop("seed", None)
        data.update(params.get("input") or {})
        if gen.input_image:
            data[params.get("image_input") or "image"] = self.photo_value(gen)
        return data

    def photo_value(self, gen) -> str:
        """What the model's image input gets: a presigned URL of Easel's copy (S3), a data URI
        (at most 256 kB) or the `urls.get` of the photo uploaded through the files API."""
        via = (gen.model.params or {}).get("photo_via") or "auto"
        url = input_photo_url(gen) if via == "auto" else None
        if url:
            return url
        photo = input_photo(gen)  # a StorageError fails the generation: nothing was sent
        if via == "auto" and len(photo.data) <= DATA_URI_MAX_BYTES:
            return data_uri(photo)
        return self.upload(photo)

    def upload(self, photo) -> str:
        """`POST /v1/files` (multipart `content` with filename and type, as replicate-python
        sends it). An upload starts no prediction and costs nothing: one that failed in any way
        is retried like a refused request (at worst an unused file waits to expire)."""
        try:
            response = self.request(
                "POST",
                self._path("/files"),
                files={"content": (photo.name, photo.data, photo.content_type)},
            )
            file = response.json()
            url = file["urls"]["get"]
            if isinstance(url, str) and url:
                return url
        except (OutcomeUnknown, ValueError, TypeError, KeyError):
            pass
        raise ProviderError(
            "The photo upload to Replicate did not complete; no prediction was started.",
            retryable=True,
        )

    def create_path_and_body(self, gen) -> tuple[str, dict[str, Any]]:
        remote = gen.model.remote_id.strip()
        body: dict[str, Any] = {"input": self.prediction_input(gen)}
        owner_name, _, version = remote.partition(":")
        if version:  # "owner/name:version"
            body["version"] = version
            path = "/predictions"
        elif "/" in owner_name:  # an official model, run at its latest version
            path = f"/models/{owner_name}/predictions"
        else:
            body["version"] = owner_name
            path = "/predictions"
        webhook = self.webhook_url()
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["completed"]
        return self._path(path), body

    def submit(self, gen) -> Done | Pending | Failed:
        header = prefer_wait((gen.model.params or {}).get("wait"))
        if header is None:
            raise ProviderError("The model's params.wait is not a Prefer value; nothing was sent.")
        path, body = self.create_path_and_body(gen)
        # What reconcile() looks for in the prediction list if the reply is lost.
        gen.provider_state = {
            **(gen.provider_state or {}),
            "sent_input": input_digest(body["input"]),
        }
        response = self.request(
            "POST",
            path,
            json=body,
            headers={"Prefer": header} if header else {},
            timeout=self.submit_timeout(gen),
        )
        prediction = self.json(response, accepted=True)
        if not isinstance(prediction, dict) or not prediction.get("id"):
            raise OutcomeUnknown(
                f"Replicate accepted the request ({response.status_code}) but its reply names "
                f"no prediction; {NOT_SENT_AGAIN}"
            )
        return self.read(prediction, gen)

    # --- check -------------------------------------------------------------------------

    def check(self, gen) -> Done | Pending | Failed:
        response = self.request("GET", self._path(f"/predictions/{gen.provider_job_id}"))
        return self.read(self.json(response), gen)

    def read(self, prediction: Any, gen=None) -> Done | Pending | Failed:
        if not isinstance(prediction, dict) or not prediction.get("id"):
            raise ProviderError("Replicate answered without a prediction id.", retryable=True)
        status = prediction.get("status")
        error = prediction.get("error")
        if status == "succeeded":
            urls = output_urls(prediction.get("output"))
            keep = (gen.model.params or {}).get("outputs") if gen is not None else None
            if keep:
                urls = [urls[i] for i in keep if i < len(urls)]
            return Done(images=[ImageOutput(url=url) for url in urls])
        if status == "failed":
            return Failed(f"Replicate: {error or 'the prediction failed.'}")
        if status == "canceled":
            return Failed("Canceled at Replicate.", canceled=True)
        if status == "aborted":  # ended before it started running, e.g. its deadline passed
            reason = "Replicate aborted the prediction before it started"
            return Failed(f"{reason}: {error}" if error else f"{reason}.", canceled=True)
        if status in ("starting", "processing"):
            return Pending(
                job_id=str(prediction["id"]), progress=PROGRESS[status], state={"status": status}
            )
        raise ProviderError(f"Replicate reported an unknown status {status!r}.", retryable=False)

    def cancel(self, gen) -> None:
        self.request("POST", self._path(f"/predictions/{gen.provider_job_id}/cancel"))

    def check_connection(self) -> str:
        account = self.json(self.request("GET", self._path("/account")))
        return f"Connected to Replicate as {account.get('username', 'an account')}."

    # --- reconcile ---------------------------------------------------------------------

    def reconcile(self, gen) -> Done | Pending | Failed | None:
        """Find the prediction a lost create reply was about in `GET /v1/predictions`
        (`created_after`, 100 a page, most recent first, `next` cursor URLs). The list names
        no webhook and has no field Easel could mark, so a prediction matches by the exact
        input Easel sent (its digest, kept before sending), the model or version, and a
        creation time after the send. Anything but exactly one match is None: the generation
        then fails with the reason and nothing is sent again."""
        digest = (gen.provider_state or {}).get("sent_input")
        sent_at = gen.submitted_at or gen.started_at
        if not digest or sent_at is None:
            return None
        since = sent_at - CLOCK_SKEW
        url: str | None = self._path("/predictions")
        query: dict[str, str] | None = {"created_after": since.isoformat().replace("+00:00", "Z")}
        matches: dict[str, dict] = {}
        for _ in range(RECONCILE_PAGES):
            page = self.json(self.request("GET", url, params=query))
            if not isinstance(page, dict):
                return None
            for item in page.get("results") or []:
                if self._is_ours(item, gen, digest, since):
                    matches[str(item["id"])] = item
            url, query = page.get("next"), None
            if not (isinstance(url, str) and url.startswith(f"{self.base_url}/")):
                break  # (the token only ever goes to the API's own origin)
        if len(matches) != 1:
            return None
        return self.read(next(iter(matches.values())), gen)

    def _is_ours(self, item: Any, gen, digest: str, since: datetime) -> bool:
        if not isinstance(item, dict) or not item.get("id"):
            return False
        try:
            created = datetime.fromisoformat(str(item.get("created_at")))
            if input_digest(item.get("input")) != digest or created < since:
                return False
        except (ValueError, TypeError):  # unparsable, or a time without its zone
            return False
        owner_name, _, version = gen.model.remote_id.strip().partition(":")
        if version or "/" not in owner_name:
            return item.get("version") == (version or owner_name)
        return item.get("model") == owner_name

    # --- downloads ---------------------------------------------------------------------

    def download_headers(self, url: str) -> dict[str, str]:
        """The API token for an output on Replicate's own hosts (https only) or the configured
        API origin; nothing for any other URL a model may return."""
        try:
            parsed = httpx.URL(url)
            own = parsed.scheme == "https" and any(
                parsed.host == h or parsed.host.endswith(f".{h}") for h in OWN_HOSTS
            )
            api = httpx.URL(self.base_url)
            own = own or (parsed.scheme, parsed.host, parsed.port) == (
                api.scheme,
                api.host,
                api.port,
            )
            return self.auth_headers() if own and self.api_key else {}
        except (httpx.InvalidURL, TypeError, ValueError):
            return {}

    # --- webhooks ----------------------------------------------------------------------

    def webhook_secret(self) -> str:
        """REPLICATE_WEBHOOK_SECRET, or the account's default key fetched once and cached."""
        secret = provider_setting(self.name, "webhook_secret") or cache.get(SECRET_CACHE_KEY)
        if secret:
            return secret
        try:
            secret = self.json(self.request("GET", self._path("/webhooks/default/secret"))).get(
                "key", ""
            )
        except (ProviderError, AttributeError):
            return ""
        if secret:
            cache.set(SECRET_CACHE_KEY, secret, timeout=3600)
        return secret

    def webhook_job_id(self, request: HttpRequest) -> str | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not verify_signature(self.webhook_secret(), headers, request.body):
            return None
        try:
            prediction = json.loads(request.body)
        except ValueError:
            return None
        job_id = prediction.get("id") if isinstance(prediction, dict) else None
        return str(job_id) if job_id else None


def output_urls(output: Any) -> list[str]:
    """Replicate outputs are a URL, a list of URLs, or (some models) an object holding them."""
    if isinstance(output, str):
        return [output]
    if isinstance(output, list):
        return [item for item in output if isinstance(item, str) and item]
    if isinstance(output, dict):
        return [
            v for v in output.values() if isinstance(v, str) and v.startswith(("http", "data:"))
        ]
    return []
