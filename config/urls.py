from django.conf import settings
from django.contrib import admin
from django.urls import include, path, register_converter

from config import health, metrics


class PublicIdConverter:
    """A generation's public id as `new_generation_id` makes them (URL-safe base64, at most the
    field's 16 characters). Anything else — a NUL byte, which PostgreSQL refuses in a query
    (a 500 before), or 10 KB of junk — is a 404 before any view or query runs."""

    regex = r"[A-Za-z0-9_-]{1,16}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ShareTokenConverter:
    """A share link's token as `new_share_token` makes them (exactly 32 URL-safe characters):
    anything else is a 404 before the view runs, the same 404 as an unknown or revoked link."""

    regex = r"[A-Za-z0-9_-]{32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


# Registered before the includes below import the app URLconfs that use `<public_id:…>`.
register_converter(PublicIdConverter, "public_id")
register_converter(ShareTokenConverter, "share_token")

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("gallery/", include("gallery.urls")),
    path("s/", include("gallery.share_urls")),  # public share links, no sign-in (issue #18)
    path("api/", include("generator.api.urls")),
    path("v1/", include("generator.api.openai_urls")),
    path("webhooks/", include("generator.webhook_urls")),
    path("", include("generator.urls")),
]

handler500 = health.server_error  # a database outage is a 503, not a 500 (issue 16)

if settings.EASEL_BENCH_VIEWS:  # baselines for `make bench` only (off by default)
    urlpatterns.insert(0, path("bench/", include("config.bench_urls")))
