"""SQL queries per page are constant: page 1, a deep page and a filtered page cost the same,
however many generations and images a user has (no N+1 over cards or images)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generator.models import Generation, OutputImage

# Session, user, models for the filter form, the page (+1 for the look-ahead row), its images,
# and whatever the gallery shows beside the grid. A bound, not a target: the point is that it
# does not grow with the page number or the history size.
MAX_GALLERY_QUERIES = 10
PAGE = 12
_ids = itertools.count()


def _history(user, model, n: int, images_per: int = 2, days_ago: int = 30) -> list[Generation]:
    start = timezone.now() - timedelta(days=days_ago)
    gens = Generation.objects.bulk_create(
        Generation(
            user=user, model=model, provider=model.provider, prompt=f"fox {i}",
            status=Generation.Status.COMPLETED if i % 5 else Generation.Status.FAILED,
            created_at=start + timedelta(minutes=i), tag_sent=user.public_id,
            public_id=f"qc{next(_ids):08d}",
        )
        for i in range(n)
    )
    OutputImage.objects.bulk_create(
        OutputImage(generation=g, index=k, file=f"generations/q/{g.public_id}-{k}.png",
                    thumbnail=f"generations/q/{g.public_id}-{k}.webp", width=64, height=64,
                    bytes=100, content_type="image/png")
        for g in gens if g.status == Generation.Status.COMPLETED for k in range(images_per)
    )
    return gens


def _count(client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries), response.content.decode()


def _next_link(html: str) -> str:
    match = re.search(r'href="\?([^"]*cursor=[^"]+)"', html)
    assert match, "no next-page link"
    return "/gallery/?" + match.group(1).replace("&amp;", "&")


@pytest.mark.django_db
def test_a_deep_gallery_page_costs_the_same_queries_as_page_one(
    owner_client, owner, local_model, django_assert_max_num_queries
):
    _history(owner, local_model, PAGE * 6)
    url = f"/gallery/?page_size={PAGE}"
    with django_assert_max_num_queries(MAX_GALLERY_QUERIES):
        first, html = _count(owner_client, url)
    counts = [first]
    for _ in range(4):  # walk to page 5 by the "Older" links
        url = _next_link(html)
        with django_assert_max_num_queries(MAX_GALLERY_QUERIES):
            n, html = _count(owner_client, url)
        counts.append(n)
    assert "cursor=" in url
    assert len(set(counts)) == 1, counts


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_history_or_images(
    owner_client, owner, local_model
):
    _history(owner, local_model, PAGE + 1, images_per=1)
    small, _ = _count(owner_client, f"/gallery/?page_size={PAGE}")
    _history(owner, local_model, PAGE * 10, images_per=4, days_ago=1)  # newer rows, four images each
    large, html = _count(owner_client, f"/gallery/?page_size={PAGE}")
    assert html.count('class="card') >= PAGE or html.count("<li>") >= PAGE
    assert large == small


@pytest.mark.django_db
def test_a_filtered_gallery_page_costs_the_same_as_an_unfiltered_one(
    owner_client, owner, local_model, wide_model, django_assert_max_num_queries
):
    _history(owner, local_model, PAGE * 3)
    Generation.objects.filter(pk__in=Generation.objects.order_by("pk").values("pk")[:PAGE]).update(
        model=wide_model
    )
    plain, _ = _count(owner_client, f"/gallery/?page_size={PAGE}")
    with django_assert_max_num_queries(MAX_GALLERY_QUERIES):
        filtered, html = _count(
            owner_client, f"/gallery/?page_size={PAGE}&model=local-sketch&status=completed"
        )
    deep, _ = _count(owner_client, _next_link(html))
    assert filtered == deep
    assert filtered <= plain + 1  # the one look-up of the chosen model by its slug


@pytest.mark.django_db
def test_the_home_page_query_count_does_not_grow_with_recent_cards(
    owner_client, owner, local_model
):
    _history(owner, local_model, 2, images_per=1)
    few, _ = _count(owner_client, "/")
    _history(owner, local_model, 40, images_per=4, days_ago=1)
    many, _ = _count(owner_client, "/")
    assert many == few
