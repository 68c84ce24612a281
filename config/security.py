"""Security headers Django 5.2 does not set itself: a strict Content-Security-Policy.

Easel's pages load scripts only from its own static/js (no inline <script>, no inline event
handlers), so `script-src 'self'` holds. Inline style attributes are tolerated. Images may come
from data: URIs, https (presigned S3/R2 URLs) and the configured S3 endpoint (MinIO over http).
SecurityMiddleware and XFrameOptionsMiddleware set nosniff, Referrer-Policy and X-Frame-Options.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse
from django.views.debug import SafeExceptionReporterFilter


def _sso_origins() -> list[str]:
    """Single sign-on's "Continue" form redirects to each OpenID Connect provider's authorize
    endpoint; CSP form-action also governs that redirect, so the providers' origins are allowed."""
    apps = (
        getattr(settings, "SOCIALACCOUNT_PROVIDERS", {}).get("openid_connect", {}).get("APPS", [])
    )
    origins = []
    for app in apps:
        parts = urlsplit(app.get("settings", {}).get("server_url", ""))
        if parts.scheme and parts.netloc:
            origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


def build_policy() -> str:
    img = ["'self'", "data:", "https:"]
    endpoint = getattr(settings, "AWS_S3_ENDPOINT_URL", None)
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme and parts.netloc:
            img.append(f"{parts.scheme}://{parts.netloc}")
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": img,
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'", *_sso_origins()],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that has not set its own. Sync and async: under the
    ASGI server a sync-only middleware would hold a thread for each waiting request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._with_policy(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._with_policy(await self.get_response(request))

    @staticmethod
    def _with_policy(response: HttpResponse) -> HttpResponse:
        # Built per response (a few string joins) so it follows the settings in force.
        response.headers.setdefault("Content-Security-Policy", build_policy())
        return response


# --- Error pages and deploy checks (issue 14B) ---------------------------------------------

# user:password@ inside any URL-shaped value (DATABASE_URL, REDIS_URL, EMAIL_URL, broker URLs).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/@\s]*)@", re.I)


def mask_url_credentials(value: str) -> str:
    """'redis://:secret@host/0' → 'redis://********************@host/0'."""
    return _URL_CREDENTIALS.sub(
        lambda m: f"{m['scheme']}{SafeExceptionReporterFilter.cleansed_substitute}@", value
    )


class SafeUrlExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django hides settings whose *name* looks secret (PASSWORD, KEY…); DATABASE_URL,
    REDIS_URL, EMAIL_URL and CELERY_BROKER_URL carry their password inside the value, so the
    debug page and error e-mails showed it. Any string value with URL credentials is masked."""

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_url_credentials(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, mask_url_credentials(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


@checks.register(checks.Tags.security, deploy=True)
def check_email_backend(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """With DEBUG off and no EMAIL_URL, password-reset links would be written to the log."""
    if settings.DEBUG or settings.EMAIL_URL:
        return []
    return [
        checks.Error(
            "EMAIL_URL is not set, so e-mails (password-reset links) would go to the log.",
            hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587.",
            id="easel.E001",
        )
    ]
