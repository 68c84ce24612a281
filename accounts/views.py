from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from generator import limits
from generator.models import Generation, UsageEntry

USAGE_PAGE_SIZE = 50


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    counts = Generation.objects.for_user(request.user).status_counts()
    return render(request, "accounts/profile.html", {"counts": counts})


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """The user's ledger: every charge and every refund, newest first, with what is left now."""
    entries = (
        UsageEntry.objects.for_user(request.user)
        .select_related("model", "generation")
        .newest_first()
    )
    page = Paginator(entries, USAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "totals": list(limits.usage_totals(request.user)),
        "allowances": [a for a in limits.allowances(request.user) if not a.limits.unlimited],
    }
    return render(request, "accounts/usage.html", context)
