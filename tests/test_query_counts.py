"""SQL queries per page are constant: page 1, a deep page and a filtered page cost the same,
however many generations and images a user has (no N+1 over cards or images)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generator.models import Generation, OutputImage
from tests.conftest import image_row

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
            user=user,
            model=model,
            provider=model.provider,
            prompt=f"fox {i}",
            status=Generation.Status.COMPLETED if i % 5 else Generation.Status.FAILED,
            created_at=start + timedelta(minutes=i),
            tag_sent=user.public_id,
            public_id=f"qc{next(_ids):08d}",
        )
        for i in range(n)
    )
    OutputImage.objects.bulk_create(
        image_row(g, k, folder="q")
        for g in gens
        if g.status == Generation.Status.COMPLETED
        for k in range(images_per)
    )
    return gens


def _count(client, url: str, cold: bool = False) -> tuple[int, str]:
    if cold:
        cache.clear()  # the status counts are computed again (a cache miss)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries), response.content.decode()


def _grid(html: str) -> str:
    return re.search(r'<ul class="grid".*?</ul>', html, re.S).group(0)


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
    cold_counts, warm_counts = [], []
    for _ in range(5):  # page 1, then to page 5 by the "Older" links
        with django_assert_max_num_queries(MAX_GALLERY_QUERIES):
            cold, html = _count(owner_client, url, cold=True)
        warm, again = _count(owner_client, url)
        assert _grid(again) == _grid(html)
        cold_counts.append(cold)
        warm_counts.append(warm)
        url = _next_link(html)
    assert "cursor=" in url
    assert len(set(cold_counts)) == 1, cold_counts
    # Seen before: the page is kept until one of the user's generations changes, so it costs
    # only the session and the user, like any page.
    assert warm_counts == [2] * 5, warm_counts


@pytest.mark.django_db
def test_after_a_change_only_the_page_query_and_todays_counts_run_again(
    owner_client, owner, local_model, make_generation
):
    _history(owner, local_model, PAGE * 2)
    url = f"/gallery/?page_size={PAGE}"
    cold, _ = _count(owner_client, url, cold=True)
    make_generation(owner, prompt="a new fox")  # a new generation: the user's pages are stale
    with CaptureQueriesContext(connection) as ctx:
        response = owner_client.get(url)
    sql = [q["sql"] for q in ctx.captured_queries]
    assert response.context["page"][0].prompt == "a new fox"
    # Session, user, the page and the counts of today's rows; the other cards' HTML is cached,
    # so no images are loaded for them, and the model list and the counts of the rows settled
    # before today are cached too. The new card's images: +1.
    assert len(sql) == cold - 2, sql
    assert sum("generator_outputimage" in q for q in sql) == 1
    (counts,) = [q for q in sql if "COUNT(" in q]
    assert '"finished_at" >=' in counts and '"created_at" >=' in counts


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_history_or_images(owner_client, owner, local_model):
    _history(owner, local_model, PAGE + 1, images_per=1)
    small, _ = _count(owner_client, f"/gallery/?page_size={PAGE}", cold=True)
    _history(
        owner, local_model, PAGE * 10, images_per=4, days_ago=1
    )  # newer rows, four images each
    large, html = _count(owner_client, f"/gallery/?page_size={PAGE}", cold=True)
    assert html.count('class="gen-card') == PAGE
    assert large == small


@pytest.mark.django_db
def test_a_filtered_gallery_page_costs_the_same_as_an_unfiltered_one(
    owner_client, owner, local_model, wide_model, django_assert_max_num_queries
):
    _history(owner, local_model, PAGE * 3)
    Generation.objects.filter(pk__in=Generation.objects.order_by("pk").values("pk")[:PAGE]).update(
        model=wide_model
    )
    plain, _ = _count(owner_client, f"/gallery/?page_size={PAGE}", cold=True)
    url = f"/gallery/?page_size={PAGE}&model=local-sketch&status=completed"
    with django_assert_max_num_queries(MAX_GALLERY_QUERIES):
        filtered, html = _count(owner_client, url, cold=True)
    deep, _ = _count(owner_client, _next_link(html), cold=True)
    # The model is looked up in the list the filter form shows anyway: no extra query.
    assert plain == filtered == deep


@pytest.mark.django_db
def test_the_home_page_query_count_does_not_grow_with_recent_cards(
    owner_client, owner, local_model
):
    _history(owner, local_model, 2, images_per=1)
    few, _ = _count(owner_client, "/", cold=True)
    _history(owner, local_model, 40, images_per=4, days_ago=1)
    many, _ = _count(owner_client, "/", cold=True)
    assert many == few


def _status_counts(client) -> dict[str, int]:
    response = client.get("/gallery/")
    assert response.status_code == 200
    return {c["value"]: c["count"] for c in response.context["status_counts"]}


@pytest.mark.django_db
def test_cached_status_counts_follow_every_change_of_the_users_generations(
    owner_client, owner, stranger, make_generation
):
    make_generation(owner)
    assert _status_counts(owner_client)["completed"] == 1
    with CaptureQueriesContext(connection) as ctx:
        assert _status_counts(owner_client)["completed"] == 1
    assert not any("COUNT(" in q["sql"] for q in ctx.captured_queries)  # served from the cache

    queued = make_generation(owner, status=Generation.Status.QUEUED)  # created: post_save
    counts = _status_counts(owner_client)
    assert (counts["completed"], counts["queued"]) == (1, 1)
    running = Generation.claim(queued.pk, 60)  # queued -> running
    assert _status_counts(owner_client)["running"] == 1
    running.fail("The provider said no.")  # a transition
    counts = _status_counts(owner_client)
    assert (counts["running"], counts["failed"]) == (0, 1)
    make_generation(stranger)  # another user's change leaves the owner's cache alone
    assert _status_counts(owner_client)["completed"] == 1
    running.delete()  # deleted: post_delete
    assert _status_counts(owner_client)["failed"] == 0


@pytest.mark.django_db
def test_the_prompt_page_and_the_staff_lists_cost_the_same_with_more_rows(
    owner_client, owner, staff, local_model
):
    """No N+1 beside the gallery: the recent cards on the prompt page and the admin's
    generation list load their models, users and images in a fixed number of queries."""
    pages = ["/", "/admin/generator/generation/", "/admin/generator/outputimage/"]
    staff_client = Client()
    staff_client.force_login(staff)
    _history(owner, local_model, 2)

    def counts() -> list[int]:
        cache.clear()
        found = []
        for url in pages:
            client = owner_client if url == "/" else staff_client
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200, url
            found.append(len(ctx.captured_queries))
        return found

    few = counts()
    _history(owner, local_model, 30, images_per=3, days_ago=1)
    assert counts() == few
