from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("gallery/", include("gallery.urls")),
    path("webhooks/", include("generator.webhook_urls")),
    path("", include("generator.urls")),
]

if settings.EASEL_BENCH_VIEWS:  # baselines for `make bench` only (off by default)
    urlpatterns.insert(0, path("bench/", include("config.bench_urls")))
