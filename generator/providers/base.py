"""The provider interface.

A provider turns a Generation into images. `submit()` either returns the images at once
(`Done`) or a job handle (`Pending`) that the task checks again later with `check()`, by
scheduling itself — a worker never sleeps while a provider works. Errors are one tree
(generator.errors): `ProviderError(message, retryable=...)`; the task retries only what is
retryable.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.urls import reverse

# Re-exported: the error tree lives in generator.errors; provider modules and tests import
# these names from here.
from generator.errors import (
    GenerationError,
    LimitReached,
    NotConfigured,
    OutcomeUnknown,
    ProviderError,
)
from generator.net import USER_AGENT, host_is_private, ssl_context
from generator.providers.inputs import generation_inputs, parse_size

if TYPE_CHECKING:
    from django.http import HttpRequest

    from generator.models import Generation

__all__ = [
    "Done",
    "Failed",
    "GenerationError",
    "HttpProvider",
    "ImageOutput",
    "LimitReached",
    "NotConfigured",
    "OutcomeUnknown",
    "Pending",
    "Provider",
    "ProviderError",
    "generation_inputs",
    "parse_size",
    "provider_setting",
    "with_field_errors",
]

logger = logging.getLogger(__name__)

NOT_SENT_AGAIN = "it was not sent again so you are not charged twice — use Retry to try again."


@dataclass
class ImageOutput:
    """One output: bytes already in hand, or a URL to download them from."""

    data: bytes | None = None
    url: str | None = None
    content_type: str | None = None


@dataclass
class Done:
    images: list[ImageOutput]


@dataclass
class Pending:
    """The provider is still working. `job_id` is recorded before anything can retry."""

    job_id: str
    progress: float | None = None
    state: dict[str, Any] = field(default_factory=dict)
    poll_after: float | None = None


@dataclass
class Failed:
    reason: str
    canceled: bool = False


def provider_setting(provider: str, key: str, default: str = "") -> str:
    """The one place credentials are read from (settings, filled from the environment)."""
    return settings.EASEL_PROVIDERS.get(provider, {}).get(key) or default


class Provider:
    name: str = ""
    label: str = ""
    offline: bool = False  # True only for providers that need no network at all
    supports_cancel: bool = False
    supports_webhooks: bool = False

    def submit(self, gen: Generation) -> Done | Pending:
        raise NotImplementedError

    def check(self, gen: Generation) -> Done | Pending | Failed:
        raise NotImplementedError(f"{self.name} returns images at once; nothing to check")

    def cancel(self, gen: Generation) -> None:
        """Ask the provider to stop a job, where its API can."""

    def webhook_job_id(self, request: HttpRequest) -> str | None:
        """Verify an inbound webhook and return the job id it is about (None = refuse)."""
        return None

    def reconcile(self, gen: Generation) -> Done | Pending | Failed | None:
        """A submit's outcome was unknown (OutcomeUnknown): find the job at the provider, where
        its API lets us (a listing by user and model, a prediction list). None = it cannot be
        found; the generation then fails with the reason and is never sent again."""
        return None

    def model_errors(self, model) -> list[str]:
        """What is contradictory in an AIModel's options/params for this provider, in words
        staff can act on (the admin's model form and `addmodel` show them). [] = nothing found."""
        problem = self.photo_problem(model) if model.accepts_input_image else ""
        return ([problem] if problem else []) + self.options_errors(model)

    def options_errors(self, model) -> list[str]:
        """Provider-specific rules for a model's options and params (subclasses)."""
        return []

    def photo_problem(self, model) -> str:
        """Why this provider cannot send an input photo for `model` ("" = it can). The admin
        refuses `input_image` with this message, and a generation with a photo is never sent
        to a provider that would drop it (it fails with this reason, refunded)."""
        return f"{self.label} cannot take an input photo: its API has no image input."

    def mode(self, model) -> str:
        """How a generation of `model` runs here, in a line for staff (the admin's model pages
        show it): synchronous or polled, webhooks or not, and how long a reply is awaited."""
        return ""

    def submit_seconds(self, gen: Generation) -> float:
        """The longest submit() may wait for the provider's reply; the worker's lease is
        stretched to cover it, so the reaper never takes a call still in progress for a dead
        worker."""
        return settings.EASEL_PROVIDER_TIMEOUT

    def check_connection(self) -> str:
        """A short human-readable line; raises ProviderError when the provider is unreachable."""
        return "No connection needed."

    def download_allows_private(self) -> bool:
        """Outputs may come from private addresses only when the provider itself lives there."""
        return False

    def download_headers(self, url: str) -> dict[str, str]:
        """Headers for downloading the output at `url` (a provider's token, only ever for its
        own hosts). generator.downloads sends them to that URL's origin only, never after a
        redirect leaves it."""
        return {}


class HttpProvider(Provider):
    """Owns one httpx client with explicit timeouts and maps transport errors to ProviderError.

    Subclasses only map requests and responses.
    """

    base_url_setting = "base_url"
    # How long the provider's own SDK waits for the reply to its synchronous image call
    # (seconds; None = the submit only starts a job and answers at once). A generation image
    # takes minutes, not the 30 s of EASEL_PROVIDER_TIMEOUT, which stays for polls.
    sync_read_timeout: float | None = None

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self._transport = transport
        self._client: httpx.Client | None = None

    # Settings are read once per instance (a provider is made per task or request), not again
    # in every auth_headers() or path().
    @functools.cached_property
    def base_url(self) -> str:
        return provider_setting(self.name, self.base_url_setting).rstrip("/")

    @functools.cached_property
    def api_key(self) -> str:
        return provider_setting(self.name, "api_key")

    def auth_headers(self) -> dict[str, str]:
        return {}

    def is_configured(self) -> bool:
        return bool(self.api_key)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            if not self.is_configured():
                raise NotConfigured(self.name)
            timeout = settings.EASEL_PROVIDER_TIMEOUT
            self._client = httpx.Client(
                base_url=self.base_url,
                headers={"User-Agent": USER_AGENT, **self.auth_headers()},
                timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                transport=self._transport,
                follow_redirects=False,
                verify=ssl_context(),
            )
        return self._client

    def submit_seconds(self, gen: Generation) -> float:
        """A synchronous call waits the SDK's time, cut to the model's `timeout_seconds`."""
        if self.sync_read_timeout is None:
            return super().submit_seconds(gen)
        return float(min(self.sync_read_timeout, gen.model.timeout_seconds))

    def mode(self, model) -> str:
        if self.sync_read_timeout is not None:
            seconds = min(self.sync_read_timeout, model.timeout_seconds)
            return f"Synchronous: one request, its reply awaited up to {seconds:g} s."
        line = "Asynchronous: submitted once, then polled with backoff"
        if not self.supports_webhooks:
            return line + "."
        if self.webhook_url():
            return line + f"; webhooks to {self.webhook_url()} make the poll run at once."
        return line + "; no webhooks (PUBLIC_BASE_URL is not a public https address)."

    def submit_timeout(self, gen: Generation) -> httpx.Timeout:
        """The timeout for the submit request: a long read, a short connect."""
        return httpx.Timeout(
            self.submit_seconds(gen), connect=min(10.0, settings.EASEL_PROVIDER_TIMEOUT)
        )

    # Statuses (>= 500) after which a POST, which may start billable work, is a definite "not
    # accepted" and may be sent again; any other 5xx to a POST is an unknown outcome, never
    # re-sent. By HTTP's own definitions only 503 is a refusal before handling (RFC 9110
    # 15.6.4); 500/502/504 may come after the work started, and replicate-python never
    # retries a POST at all. An adapter widens the set only where its provider's reference
    # says a status is safe to retry (Artificial Studio's errors page: 500/502/503). 408/429
    # are handled in raise_for_response.
    post_retry_statuses: frozenset[int] = frozenset({503})

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """One call. Only a failure that proves nothing reached the provider is retryable for a
        POST (connect refused or timed out, DNS, TLS handshake: httpx.ConnectError /
        ConnectTimeout, or no pooled connection free); once the body may have gone (a read or
        write timeout, a dropped connection, a protocol error) the outcome is unknown and the
        request is never sent again (OutcomeUnknown). Idempotent methods (GET …) stay
        retryable on any transport error."""
        unsafe = method.upper() not in {"GET", "HEAD", "OPTIONS"}
        try:
            response = self.client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderError(
                f"Could not reach {self.label} ({type(exc).__name__}).", retryable=True
            ) from None
        except httpx.TimeoutException as exc:
            if unsafe:
                raise OutcomeUnknown(self.unknown_reason(self._read_timeout(kwargs))) from exc
            raise ProviderError(f"{self.label} did not answer in time.", retryable=True) from None
        except httpx.TransportError as exc:
            if unsafe:
                raise OutcomeUnknown(
                    f"The connection to {self.label} broke after the request was sent "
                    f"({type(exc).__name__}); it may still have run; {NOT_SENT_AGAIN}"
                ) from exc
            raise ProviderError(
                f"Could not reach {self.label} ({type(exc).__name__}).", retryable=True
            ) from None
        if response.status_code >= 400:
            if unsafe and response.status_code >= 500:
                if response.status_code not in self.post_retry_statuses:
                    raise OutcomeUnknown(
                        f"{self.label} had a server error ({response.status_code}) after "
                        f"receiving the request; it may still have run; {NOT_SENT_AGAIN}"
                    )
            self.raise_for_response(response)
        return response

    def unknown_reason(self, seconds: float | None) -> str:
        within = f" within {seconds:g} s" if seconds else " in time"
        return f"{self.label} did not answer{within}; it may still have run; {NOT_SENT_AGAIN}"

    def _read_timeout(self, kwargs: dict[str, Any]) -> float | None:
        timeout = kwargs.get("timeout")
        if isinstance(timeout, httpx.Timeout):
            return timeout.read
        if isinstance(timeout, (int, float)):
            return float(timeout)
        return self.client.timeout.read

    def json(self, response: httpx.Response, *, accepted: bool = False) -> Any:
        """The reply's JSON. `accepted=True` is for the reply to a submit that started billable
        work: the provider has taken (and will charge for) the request, so an unreadable reply
        is final; sending the request again could charge the user twice. Any other unreadable
        reply (a poll, a listing) is worth asking again."""
        try:
            return response.json()
        except ValueError:
            if accepted:
                raise OutcomeUnknown(
                    f"{self.label} accepted the request but its reply was not valid JSON; it was "
                    "not sent again, so you are not charged twice. Use Retry to try again."
                ) from None
            raise ProviderError(
                f"{self.label} sent a reply that is not valid JSON.", retryable=True
            ) from None

    # The provider's error envelope: the keys that may hold its own words, most specific first,
    # and where it lists field errors next to them (list key, field key, text key).
    message_keys: tuple[str, ...] = ("error", "message", "detail", "title", "reason")
    field_errors: tuple[str, str, str] | None = None

    def error_message(self, response: httpx.Response) -> str:
        """The provider's own words for an error, read from its envelope."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:200].strip()
        if not isinstance(body, dict):
            return str(body)[:200]
        for key in self.message_keys:
            value = body.get(key)
            if key == "error" and isinstance(value, dict):
                return self.error_object_message(value)
            if value:
                if self.field_errors:
                    items, field_key, text_key = self.field_errors
                    return with_field_errors(str(value), body.get(items), field_key, text_key)
                return str(value)
        return str(body)[:200]

    def error_object_message(self, error: dict[str, Any]) -> str:
        """The words in an `{"error": {"message": …}}` envelope (OpenAI's shape). Subclasses
        refine."""
        return str(error.get("message") or error)

    def raise_for_response(self, response: httpx.Response) -> None:
        status = response.status_code
        message = self.error_message(response) or response.reason_phrase
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            raise ProviderError(
                f"{self.label} is rate limiting requests: {message}",
                retryable=True,
                retry_after=retry_after,
            )
        if status >= 500 or status == 408:
            raise ProviderError(f"{self.label} had a server error ({status}).", retryable=True)
        if status in (401, 403):
            raise ProviderError(
                f"{self.label} refused Easel's credentials ({status}): {message}", retryable=False
            )
        raise ProviderError(f"{self.label} refused the request ({status}): {message}")

    def download_allows_private(self) -> bool:
        return host_is_private(httpx.URL(self.base_url).host)

    def webhook_url(self) -> str:
        """The absolute URL this provider should call (PUBLIC_BASE_URL + the webhooks route), or
        "" (no webhook field is sent; Easel polls) unless PUBLIC_BASE_URL is `https://` on a
        public host. Both providers that call back say so: Replicate's spec wants "an HTTPS URL",
        Artificial Studio rejects non-HTTPS, private and internal URLs with a 400
        (artificialstudio.mintlify.app/api/webhook), which would fail a generation that polling
        would have finished."""
        ours = httpx.URL(settings.PUBLIC_BASE_URL)
        if ours.scheme != "https" or not ours.host or host_is_private(ours.host):
            return ""
        route = reverse("webhooks:receive", args=[self.name])
        return settings.PUBLIC_BASE_URL.rstrip("/") + route


def with_field_errors(message: str, items, field_key: str, text_key: str) -> str:
    """'Validation failed (prompt: Required; n: too big)' from a provider's list of field errors."""
    if not isinstance(items, list):
        return message
    details = [
        f"{item.get(field_key)}: {item.get(text_key)}" for item in items if isinstance(item, dict)
    ]
    return f"{message} ({'; '.join(details)})" if details else message


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
