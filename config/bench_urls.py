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

from generator.models import AIModel


@login_required
@require_GET
def trivial(request: HttpRequest) -> HttpResponse:
    models = AIModel.objects.count()  # the one query (the session and user are two more)
    return HttpResponse(f"ok {request.user.public_id} {models}\n", content_type="text/plain")


app_name = "bench"
urlpatterns = [path("trivial/", trivial, name="trivial")]
