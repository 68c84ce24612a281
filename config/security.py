"""Security headers Django 5.2 does not set itself: a strict Content-Security-Policy.

Easel's pages load scripts only from its own static/js (no inline <script>, no inline event
handlers), so `script-src 'self'` holds. Inline style attributes are tolerated. Images may come
from data: URIs, https (presigned S3/R2 URLs) and the configured S3 endpoint (MinIO over http).
SecurityMiddleware and XFrameOptionsMiddleware set nosniff, Referrer-Policy and X-Frame-Options.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse


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
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that has not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = build_policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
