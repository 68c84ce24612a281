from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from generator import budget, limits
from generator.erase import EraseError, erase_user
from generator.models import Generation, UsageEntry

from .models import ApiKey

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
        "spend": [s for s in budget.spend_by_model_month(request.user) if s["spent"]],
        "budget_summary": budget.summary(request.user),
    }
    return render(request, "accounts/usage.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """Personal API keys: create (the token is shown on this one answer only), list, revoke."""
    token = ""
    error = ""
    if request.method == "POST":
        if "revoke" in request.POST:
            key = get_object_or_404(ApiKey, pk=_int(request.POST["revoke"]), user=request.user)
            key.revoke()
            messages.success(request, f"Revoked {key.name}.")
            return redirect("accounts:keys")
        name = (request.POST.get("name") or "").strip()
        if not name or len(name) > 100:
            error = "Give the key a name of 1 to 100 characters."
        else:
            _, token = ApiKey.issue(request.user, name)
    rows = ApiKey.objects.filter(user=request.user, kind=ApiKey.Kind.PERSONAL)
    status = 400 if error else 200
    context = {"keys": rows, "token": token, "error": error}
    return render(request, "accounts/keys.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    """Erase the account: confirmed by the password, or the typed e-mail for an account
    without a usable password (signed up through another provider)."""
    user = request.user
    has_password = user.has_usable_password()
    error = ""
    if request.method == "POST":
        given = request.POST.get("confirm") or ""
        if has_password:
            ok = bool(given) and user.check_password(given)
        else:
            ok = given.strip().lower() == (user.email or "").lower() and bool(given.strip())
        if not ok:
            error = "That does not match: nothing was deleted."
        else:
            try:
                erase_user(user)
            except EraseError:
                error = "Storage did not answer; nothing was deleted. Please try again."
            else:
                logout(request)
                messages.success(request, "Your account and all its images were deleted.")
                return redirect("/")
    context = {"has_password": has_password, "error": error}
    return render(request, "accounts/delete.html", context, status=400 if error else 200)


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404("No such key") from None
