from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from generator.models import Generation


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    counts = Generation.objects.for_user(request.user).status_counts()
    return render(request, "accounts/profile.html", {"counts": counts})
