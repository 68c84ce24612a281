from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("gallery/", include("gallery.urls")),
    path("api/", include("generator.api.urls")),
    path("v1/", include("generator.api.openai_urls")),
    path("webhooks/", include("generator.webhook_urls")),
    path("", include("generator.urls")),
]

if settings.EASEL_BENCH_VIEWS:  # baselines for `make bench` only (off by default)
    urlpatterns.insert(0, path("bench/", include("config.bench_urls")))
