"""A generation's card: its tile in the gallery, on the home page and in the live poll.

A finished generation's card changes only when its row does (star, delete, re-run of the
row's status), so its HTML is cached, keyed on the row's `updated_at`: a 48-card gallery page
renders only the cards it has not rendered before. An entry never outlives the presigned URLs
inside it (see generator.image_urls.attach_urls) and never reaches another row, another filter
(the detail link carries it), another time zone or an edited card template. Cards of queued and
running generations are always rendered fresh: they change every second. They have no images
yet either (images are stored in the same transaction that completes a generation), so none
are looked up for them.

A page of cards with some still at work may be kept for ACTIVE_PAGE_MAX_AGE seconds only: every
status change makes the page anew (generator/counters.py), and what it may show stale in the
meantime — a progress bar — is what the page's script refreshes every second anyway.

The card HTML holds nothing secret and no CSRF token: its buttons post through the page's one
`#card-actions` form (base.html), so a cached card stays valid across sessions.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Sequence

from django.conf import settings
from django.core.cache import cache
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from generator.counters import ACTIVE_PAGE_MAX_AGE, CARD_KEY, CARD_MAX_AGE, CARD_MIN_AGE
from generator.image_urls import attach_urls, input_photo_urls
from generator.models import Generation, OutputImage

CARD_TEMPLATE = "generator/_card.html"
# What a card shows, written once: list pages load only these (`.only(*FIELDS)`), and the
# card's cache key is a digest of their values (card_version), so a field added here is in
# the key too. The template may use these and properties of them (is_final, the status's
# display); tests/test_cards.py checks that it uses nothing else.
FIELDS = (
    "id",
    "public_id",
    "user_id",
    "status",
    "prompt",
    "progress",
    "error",
    "favorite",
    "input_image",
    "via_api",
    "created_at",
    "started_at",
    "updated_at",
    "images_expired_at",
    "model__id",
    "model__name",
)


@functools.cache
def template_version(*names: str) -> str:
    """Changes with these templates' source, so a deploy never serves HTML of the old ones."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(get_template(name).template.source.encode())
    return digest.hexdigest()[:10]


def _value(gen: Generation, field: str) -> object:
    """A FIELDS entry's value: `model__name` is gen.model.name."""
    value: object = gen
    for part in field.split("__"):
        value = getattr(value, part)
    return value


def card_version(gen: Generation, filter_query: str = "") -> str:
    """Names what a card shows: every one of FIELDS (`updated_at` moves on every write through
    the model; the others catch a QuerySet.update() that did not move it, and the model's
    name an edited model), the filter the detail link carries, the time zone, the storage and
    the card template."""
    varies = "|".join(
        [
            *(repr(_value(gen, field)) for field in FIELDS),
            filter_query,
            timezone.get_current_timezone_name(),
            settings.STORAGE_BACKEND,
        ]
    )
    digest = hashlib.sha256(varies.encode()).hexdigest()[:24]
    return f"{template_version(CARD_TEMPLATE)}:{gen.pk}:{digest}"


def _cache_key(gen: Generation, filter_query: str) -> str:
    return f"{CARD_KEY}:{card_version(gen, filter_query)}"


def _images_of(gens: Sequence[Generation]) -> dict[int, list[OutputImage]]:
    """The images of these generations in one query, by generation id. Kept apart from the
    generations, which may be cached (a page of them) without their images."""
    if not gens:
        return {}
    by_id = {gen.pk: gen for gen in gens}
    found: dict[int, list[OutputImage]] = {}
    for img in OutputImage.objects.filter(generation__in=list(by_id)).order_by(
        "generation_id", "index"
    ):
        img.generation = by_id[img.generation_id]
        found.setdefault(img.generation_id, []).append(img)
    return found


def render_card(gen: Generation, filter_query: str = "") -> SafeString:
    """One card, rendered now (the live poll: the generation is usually still running)."""
    return render_cards([gen], filter_query)[0][0]


def render_cards(
    gens: Sequence[Generation], filter_query: str = ""
) -> tuple[list[SafeString], int]:
    """The cards of these generations (with `model` loaded), in order, and how many seconds
    this HTML may be served from a cache (at most ACTIVE_PAGE_MAX_AGE if a card is of a
    generation still at work).

    One cache round trip for the finished ones; the images of the other finished ones are
    loaded (one query) and their URLs minted only for cards that are not cached.
    """
    now = time.time()
    keys = {gen.pk: _cache_key(gen, filter_query) for gen in gens if gen.is_final}
    cached = cache.get_many(list(keys.values())) if keys else {}
    missing = [gen for gen in gens if keys.get(gen.pk) not in cached]
    fresh_expires = now + CARD_MAX_AGE
    images = _images_of([gen for gen in missing if gen.is_final])
    photos: dict[int, str] = {}
    if missing:
        until = attach_urls([img for imgs in images.values() for img in imgs])
        photos, photos_until = input_photo_urls(missing)
        for limit in (until, photos_until):
            if limit is not None:
                fresh_expires = min(fresh_expires, limit)
    template = get_template(CARD_TEMPLATE)
    cards, fresh, expires = [], {}, fresh_expires
    for gen in gens:
        key = keys.get(gen.pk)
        if key in cached:
            html, card_expires = cached[key]
            expires = min(expires, card_expires)
        else:
            context = {
                "gen": gen,
                "images": images.get(gen.pk, []),
                "input_url": photos.get(gen.pk, ""),
                "filter_query": filter_query,
            }
            html = template.render(context)
            if key:
                fresh[key] = (str(html), fresh_expires)
        cards.append(mark_safe(html))
    if fresh and fresh_expires - now >= CARD_MIN_AGE:
        cache.set_many(fresh, int(fresh_expires - now))
    max_age = int(expires - now)
    if max_age < CARD_MIN_AGE:
        return cards, 0
    active = len(keys) < len(gens)
    return cards, min(max_age, ACTIVE_PAGE_MAX_AGE) if active else max_age
