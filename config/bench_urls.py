"""Baseline views for `make bench` only, mounted at /bench/ when EASEL_BENCH_VIEWS=true.

The trivial view is the yardstick every page is measured against in the same run: the same
server, middleware, session and user lookup as a real page, plus exactly one query.
Off by default; it shows nothing private (the caller's own row count).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from gallery import views as gallery_views
from generator import counters
from generator.models import AIModel


@login_required
@require_GET
def trivial(request: HttpRequest) -> HttpResponse:
    models = AIModel.objects.count()  # the one query (the session and user are two more)
    return HttpResponse(f"ok {request.user.public_id} {models}\n", content_type="text/plain")


@login_required
@require_GET
def gallery_after_change(request: HttpRequest) -> HttpResponse:
    """The gallery as it is made right after one of the user's generations changed: the
    user's change counter is moved first, so no kept page is served (for a row of figures
    with no target: what a user who is generating all the time gets)."""
    counters.bump_user(request.user.pk)
    return gallery_views.gallery(request)


app_name = "bench"
urlpatterns = [
    path("trivial/", trivial, name="trivial"),
    path("gallery-after-change/", gallery_after_change, name="gallery_after_change"),
]
