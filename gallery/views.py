"""Each user's own history: a filtered, keyset-paginated grid and one page per generation."""

from __future__ import annotations

import re
import secrets
import time
from typing import TypedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gallery.forms import FILTER_KEYS, GalleryFilterForm, ShareLinkForm, make_cursor
from generator import actions, counters, limits
from generator.cards import CARD_TEMPLATE, render_cards, template_version
from generator.cards import FIELDS as CARD_FIELDS
from generator.image_urls import attach_image_urls, input_photo_urls
from generator.models import Generation
from generator.views import get_generation_for_user


class StatusCount(TypedDict):
    value: str
    label: str
    count: int
    query: str
    current: bool


class GalleryPage(TypedDict, total=False):
    """What the page cache keeps; its shape is in the key (counters.shape_version)."""

    main_html: str
    page_ids: list[int]
    next_cursor: str
    status_counts: list[StatusCount]
    max_age: int
    bad: bool  # an invalid filter: answered 400, never kept (max_age 0)


PAGE_VERSION = counters.shape_version(GalleryPage, StatusCount)
PAGE_TEMPLATE = "gallery/_page.html"
PAGE_TEMPLATES = (
    CARD_TEMPLATE,
    PAGE_TEMPLATE,
    "gallery/_status_counts.html",
    "gallery/_results.html",
)


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    form = GalleryFilterForm(request.GET)

    def page() -> GalleryPage:
        if not form.is_valid():
            return {"bad": True, "max_age": 0}  # answered below; never kept
        return _gallery_page(request, form)

    # Any page costs the same at any history size (keyset cursor on an index, counts cached);
    # a page seen before costs one cache round trip more than any page: its HTML is kept until
    # one of the user's generations changes (generator/counters.py), a model is edited, or its
    # image URLs near expiry; a page with a generation still at work for a few seconds only
    # (counters.ACTIVE_PAGE_MAX_AGE). A kept page's filters were validated when it was made,
    # against the models it depends on, so they are not validated again.
    body = counters.cached_for_user(
        request.user.pk,
        f"{counters.PAGE_KEY}:{PAGE_VERSION}:{template_version(*PAGE_TEMPLATES)}:"
        f"{timezone.get_current_timezone_name()}:"
        f"{request.GET.urlencode()}",
        page,
        max_age=lambda body: body["max_age"],
        depends=[counters.MODELS_COUNTER],
    )
    if body.get("bad"):
        return render(request, "gallery/bad_filter.html", {"form": form}, status=400)
    ids = body["page_ids"]
    context = {
        "form": form,
        **body,
        # The rows behind the cards, for templates and tests that ask (a query if they do).
        "page": SimpleLazyObject(lambda: _rows_in_order(ids)),
    }
    return render(request, "gallery/list.html", context)


def _rows_in_order(ids: list[int]) -> list[Generation]:
    rows = Generation.objects.select_related("model").in_bulk(ids)
    return [rows[pk] for pk in ids if pk in rows]


def _gallery_page(request: HttpRequest, form: GalleryFilterForm) -> GalleryPage:
    """The page's HTML and what the view needs beside it; small, because it is cached."""
    data = form.cleaned_data
    base = form.filter_without_status(Generation.objects.for_user(request.user))
    qs = base.with_status(data["status"] or None)
    if data["cursor"]:
        qs = form.after(qs, *data["cursor"][1:])
    size = data["page_size"]
    page = list(form.ordered(qs.select_related("model").only(*CARD_FIELDS))[: size + 1])
    next_cursor = make_cursor(page[size - 1], data["sort"]) if len(page) > size else ""
    page = page[:size]
    filter_query = _filter_query(request)
    # Cached cards cost nothing more; the others load their images (one query) and URLs.
    cards, max_age = render_cards(page, filter_query)
    grid = mark_safe("".join(f"<li>{card}</li>" for card in cards))  # cards are escaped HTML
    query = request.GET.copy()
    query.pop("cursor", None)
    counts = user_status_counts(
        request.user.pk, form.filter_key(), base, starred=bool(data.get("starred"))
    )
    links = _status_links(request)
    status_counts: list[StatusCount] = [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "query": links[value],
            "current": data["status"] == value,
        }
        for value, label in [("", "All"), *Generation.Status.choices]
    ]
    context = {
        "form": form,
        "grid": grid,
        "next_cursor": next_cursor,
        "base_query": query.urlencode(),
        "is_first_page": not data["cursor"],
        "filtered": form.is_filtered,
        "sort": data["sort"],
        "status_counts": status_counts,
    }
    return {
        "main_html": render_to_string(PAGE_TEMPLATE, context),
        "page_ids": [gen.pk for gen in page],
        "next_cursor": next_cursor,
        "status_counts": status_counts,
        "max_age": max_age,
    }


def user_status_counts(
    user_id: int, filter_key: str, base, *, starred: bool = False
) -> dict[str, int]:
    """How many of `base` (one user's generations under every filter but the status) are in
    each status, and in all ("").

    A COUNT over the whole history costs ~30 ms for a user with 100,000 generations, and such
    a user's change counter moves with every generation they make. So the history is split at
    the start of today: rows that were already final then never change status again (a final
    state is never left), and their counts are kept until one of the user's rows is deleted,
    edited (counters.history_key), a star is set when the filter is "starred" (stars_key), or
    DERIVED_MAX_AGE passes; the rest — made today, finished today or still at work — are
    counted each time the page is made, over index ranges. A star so recounts nothing for
    the other filters (a heavy user starring ten cards a second recounted ~100,000 rows each).
    """
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    recent = Q(status__in=Generation.ACTIVE) | Q(created_at__gte=today) | Q(finished_at__gte=today)
    settled = counters.cached(
        counters.derived_key(user_id, f"gallery-settled-counts:{today.date()}:{filter_key}"),
        [counters.history_key(user_id), *([counters.stars_key(user_id)] if starred else [])],
        base.exclude(recent).status_counts,
    )
    counts = {s: settled.get(s, 0) + n for s, n in base.filter(recent).status_counts().items()}
    counts[""] = sum(counts.values())
    return counts


def _filter_query(request: HttpRequest) -> str:
    """The gallery filters of this request, to carry to a detail page and back."""
    query = QueryDict(mutable=True)
    for key in FILTER_KEYS:
        value = request.GET.get(key)
        if value:
            query[key] = value
    return query.urlencode()


def _status_links(request: HttpRequest) -> dict[str, str]:
    """`?…&status=x` for each status (and "" for any), keeping the other filters."""
    links = {}
    for value in ["", *Generation.Status.values]:
        query = request.GET.copy()
        query.pop("cursor", None)
        query.pop("status", None)
        if value:
            query["status"] = value
        links[value] = query.urlencode()
    return links


def _neighbours(request: HttpRequest, gen: Generation) -> dict:
    """Previous/next generation within the gallery filter the user came from."""
    form = GalleryFilterForm(request.GET)
    if not form.is_valid():
        return {}
    qs = form.filter(Generation.objects.for_user(request.user)).only("public_id")
    newer = form.before(qs, gen.created_at, gen.pk).first()
    older = form.ordered(form.after(qs, gen.created_at, gen.pk)).first()
    return {
        "prev_id": newer.public_id if newer else "",
        "next_id": older.public_id if older else "",
    }


def variants_of(gen: Generation, limit: int = 24) -> list[Generation]:
    """The other generations of this prompt by this user: re-runs, retries and repeats."""
    root = gen
    seen = {gen.pk}
    while root.parent_id and root.parent_id not in seen:  # climb the parent chain
        seen.add(root.parent_id)
        parent = Generation.objects.filter(pk=root.parent_id, user=gen.user).first()
        if parent is None:
            break
        root = parent
    family = Generation.objects.for_user(gen.user).filter(
        Q(prompt=gen.prompt) | Q(parent=root) | Q(pk=root.pk) | Q(parent__parent=root)
    )
    return list(
        family.exclude(pk=gen.pk)
        .select_related("model")
        .prefetch_related("images")
        .newest_first()[:limit]
    )


@login_required
@require_GET
def detail(request: HttpRequest, public_id: str) -> HttpResponse:
    gen = get_generation_for_user(request, public_id)
    return render_detail(request, gen)


def render_detail(
    request: HttpRequest, gen: Generation, *, share_form: ShareLinkForm | None = None, status=200
) -> HttpResponse:
    """The detail page; also what the Share form answers with when its input is refused."""
    variants = variants_of(gen)
    attach_image_urls([gen, *variants])
    context = {
        "gen": gen,
        "variants": variants,
        "filter_query": _filter_query(request),
        "input_url": input_image_url(gen),
        # One Re-run per page view: a double-click (or five) makes one variant.
        "rerun_token": secrets.token_urlsafe(16),
        "share_form": share_form or ShareLinkForm(),
        "share_links": [
            {
                "link": link,
                "url": request.build_absolute_uri(reverse("share:page", args=[link.token])),
            }
            for link in gen.share_links.all()
        ],
        **_neighbours(request, gen),
    }
    return render(request, "gallery/detail.html", context, status=status)


def _back(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


@login_required
@require_POST
def star(request: HttpRequest, public_id: str) -> HttpResponse:
    """Toggle the star (or set it with `favorite=1|0`); owner only."""
    gen = get_generation_for_user(request, public_id)
    wanted = request.POST.get("favorite")
    favorite = (not gen.favorite) if wanted not in ("0", "1") else wanted == "1"
    gen.set_favorite(favorite)
    if request.headers.get("X-Requested-With") == "fetch":
        return JsonResponse({"favorite": favorite})
    return redirect(_back(request, reverse("gallery:detail", args=[gen.public_id])))


def _rerun(request: HttpRequest, public_id: str, *, new_seed: bool) -> HttpResponse:
    gen = get_generation_for_user(request, public_id)
    token = request.POST.get("token", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", token):
        # No page token (a hand-made POST): clicks within the same 10 s count as one.
        token = f"t{int(time.time() // 10)}"
    try:
        new, _ = actions.rerun(gen, new_seed=new_seed, token=token)
    except actions.RerunRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("gallery:detail", args=[gen.public_id]))
    except limits.LimitExceeded as exc:
        messages.error(request, exc.message)
        return redirect(reverse("gallery:detail", args=[gen.public_id]))
    messages.success(request, "Re-run queued." if new_seed else "Retry queued.")
    return redirect(f"{reverse('generator:home')}?new={new.public_id}")


@login_required
@require_POST
def rerun(request: HttpRequest, public_id: str) -> HttpResponse:
    """Same settings, a new seed: a variant to compare with the original."""
    return _rerun(request, public_id, new_seed=True)


@login_required
@require_POST
def retry(request: HttpRequest, public_id: str) -> HttpResponse:
    """Same settings and seed, for a generation that failed or was canceled."""
    return _rerun(request, public_id, new_seed=False)


def input_image_url(gen: Generation) -> str:
    return input_photo_urls([gen])[0].get(gen.pk, "")


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, public_id: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes the generation and its stored images."""
    gen = get_generation_for_user(request, public_id)
    if request.method == "GET":
        attach_image_urls([gen])
        return render(request, "gallery/delete.html", {"gen": gen})
    if not gen.is_final:
        # Stop the pipeline first, so no worker stores images for a row that is going away.
        actions.cancel(gen, "Deleted by its owner.")
    gen.delete()  # the OutputImage post_delete receiver removes the objects from storage
    messages.success(request, "The generation and its images were deleted.")
    return redirect("gallery:list")
