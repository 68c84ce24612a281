"""Cached cards and gallery pages are never wrong: whatever changes a card or a page shows a
fresh one, nothing reaches another user, and nothing outlives the image URLs inside it."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generator import cards, counters
from generator.models import AIModel, Generation
from tests import s3server
from tests.conftest import image_row

s3, s3_endpoint = s3server.s3, s3server.s3_endpoint  # fixtures from the S3 test equipment


def _with_image(gen: Generation) -> Generation:
    image_row(gen).save()
    return gen


def _card(html: str, gen: Generation) -> str:
    match = re.search(rf'<article[^>]*id="gen-{gen.public_id}".*?</article>', html, re.S)
    assert match, f"no card for {gen.public_id}"
    return match.group(0)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_starred_card_shows_its_star_on_the_next_view(owner_client, owner, make_generation):
    gen = make_generation(owner)
    first = owner_client.get("/gallery/").content.decode()
    assert 'aria-pressed="false"' in _card(first, gen)
    owner_client.post(f"/gallery/{gen.public_id}/star/", HTTP_X_REQUESTED_WITH="fetch")
    again = owner_client.get("/gallery/").content.decode()
    assert 'aria-pressed="true"' in _card(again, gen)
    assert [g.pk for g in owner_client.get("/gallery/?starred=1").context["page"]] == [gen.pk]


@pytest.mark.django_db
def test_status_changes_new_and_deleted_generations_show_at_once(
    owner_client, owner, make_generation
):
    done = make_generation(owner, prompt="an old fox")
    active = make_generation(owner, status=Generation.Status.RUNNING, prompt="a fox at work")
    owner_client.get("/gallery/")
    active.complete()
    html = owner_client.get("/gallery/").content.decode()
    assert 'data-status="completed"' in _card(html, active)
    new = make_generation(owner, prompt="a new fox")
    assert owner_client.get("/gallery/").context["page"][0] == new
    done.delete()
    assert done not in owner_client.get("/gallery/").context["page"]
    counts = {
        c["value"]: c["count"] for c in owner_client.get("/gallery/").context["status_counts"]
    }
    assert counts["completed"] == 2 and counts[""] == 2


@pytest.mark.django_db
def test_a_cached_page_never_reaches_another_user(owner_client, owner, stranger, make_generation):
    stranger_client = Client()
    stranger_client.force_login(stranger)
    mine = make_generation(owner, prompt="owner's secret fox")
    theirs = make_generation(stranger, prompt="stranger's own owl")
    assert mine in owner_client.get("/gallery/?status=completed").context["page"]
    response = stranger_client.get("/gallery/?status=completed")
    assert list(response.context["page"]) == [theirs]
    assert "secret fox" not in response.content.decode()


@pytest.mark.django_db
def test_cards_render_once_and_again_only_when_their_row_changes(owner, make_generation):
    gens = [_with_image(make_generation(owner, prompt=f"fox {i}")) for i in range(3)]
    for gen in gens:
        gen.refresh_from_db()
    html, max_age = cards.render_cards(gens)
    assert max_age > 0
    with CaptureQueriesContext(connection) as ctx:
        again, _ = cards.render_cards(gens)
    assert again == html and ctx.captured_queries == []  # no images loaded: all cached
    Generation.objects.filter(pk=gens[1].pk).update(error="x")  # no updated_at: same card
    gens[1].favorite = True
    gens[1].updated_at += timedelta(microseconds=1)  # what the star view's UPDATE does
    with CaptureQueriesContext(connection) as ctx:
        changed, _ = cards.render_cards(gens)
    assert len(ctx.captured_queries) == 1  # the images of the one changed card
    assert changed[0] == html[0] and changed[2] == html[2]
    assert "★" in changed[1] and "★" not in html[1]


@pytest.mark.django_db
def test_cards_of_unfinished_generations_are_never_kept(owner, make_generation):
    running = make_generation(owner, status=Generation.Status.RUNNING, progress=0.2)
    done = make_generation(owner)
    _, max_age = cards.render_cards([done, running])
    # A page with this card is kept a few seconds at most (its script polls every second).
    assert 0 < max_age <= counters.ACTIVE_PAGE_MAX_AGE
    Generation.objects.filter(pk=running.pk).update(progress=0.6)
    running = Generation.objects.select_related("model").get(pk=running.pk)
    with CaptureQueriesContext(connection) as ctx:
        html, _ = cards.render_cards([running])
    assert 'value="60"' in html[0]  # rendered again, from the row as it is now
    # A running generation has no images yet (they come with its completion): none looked up.
    assert len(ctx.captured_queries) == 0


@pytest.mark.django_db
def test_a_renamed_model_renames_its_cards(owner, make_generation, local_model):
    gen = make_generation(owner)
    gen.refresh_from_db()
    before, _ = cards.render_cards([gen])
    AIModel.objects.filter(pk=local_model.pk).update(name="Sketch Pro")
    gen = Generation.objects.select_related("model").get(pk=gen.pk)
    after, _ = cards.render_cards([gen])
    assert "Sketch Pro" in after[0] and "Sketch Pro" not in before[0]


@pytest.mark.django_db
def test_a_model_saved_in_the_admin_shows_in_a_kept_page_at_once(
    owner_client, owner, make_generation, local_model
):
    make_generation(owner)
    assert "Sketch Pro" not in owner_client.get("/gallery/").content.decode()
    with CaptureQueriesContext(connection) as ctx:
        owner_client.get("/gallery/")
    assert len(ctx.captured_queries) == 2  # kept: only the session and the user
    local_model.name = "Sketch Pro"
    local_model.save()  # what the admin does; nothing of the user's changed
    html = owner_client.get("/gallery/").content.decode()
    assert '<option value="local-sketch">Sketch Pro</option>' in html  # the filter
    assert 'class="model">Sketch Pro</span>' in html  # and the card


@pytest.mark.django_db
def test_a_kept_card_never_outlives_its_presigned_urls(owner, make_generation, settings, s3):
    settings.AWS_QUERYSTRING_EXPIRE = 900  # URLs handed out for 600 s (5 min margin)
    gen = _with_image(make_generation(owner))
    gen.refresh_from_db()
    html, max_age = cards.render_cards([gen])
    assert "X-Amz-Expires=900" in html[0]
    assert 590 <= max_age <= 600
    # Later, the same card from the cache keeps the first expiry, not a new one.
    time.sleep(1.1)
    _, later = cards.render_cards([gen])
    assert later < max_age


def _counts(client, url: str = "/gallery/") -> dict[str, int]:
    return {c["value"]: c["count"] for c in client.get(url).context["status_counts"]}


def _truth(user, **filters) -> dict[str, int]:
    counts = Generation.objects.for_user(user).filter(**filters).status_counts()
    return {**counts, "": sum(counts.values())}


@pytest.mark.django_db
def test_status_counts_stay_exact_while_the_settled_history_is_kept(
    owner_client, owner, make_generation
):
    """The counts of rows settled before today are kept apart from today's: whatever changes,
    the figures shown are the ones a full COUNT gives."""
    from django.utils import timezone

    S = Generation.Status
    old = timezone.now() - timedelta(days=3)
    settled = [make_generation(owner, status=s) for s in (S.COMPLETED,) * 3 + (S.FAILED,)]
    overnight = make_generation(owner, status=S.RUNNING, prompt="started two days ago")
    Generation.objects.filter(pk__in=[g.pk for g in settled]).update(
        created_at=old, finished_at=old
    )
    Generation.objects.filter(pk=overnight.pk).update(created_at=old + timedelta(days=1))
    make_generation(owner, status=S.QUEUED, prompt="made today")
    cache.clear()  # the rows above were moved in time without signals
    assert _counts(owner_client) == _truth(owner)
    assert _counts(owner_client)["completed"] == 3

    # A row from before today finishes now: it was and stays among today's figures.
    Generation.objects.get(pk=overnight.pk).complete()
    assert _counts(owner_client) == _truth(owner) and _truth(owner)["completed"] == 4

    # A new generation moves the user's counter, not the settled counts: one COUNT, of today.
    make_generation(owner, status=S.QUEUED)
    with CaptureQueriesContext(connection) as ctx:
        shown = _counts(owner_client)
    assert shown == _truth(owner)
    assert sum("COUNT(" in q["sql"] for q in ctx.captured_queries) == 1

    # Deleting or starring a settled row changes the settled counts.
    settled[0].delete()
    assert _counts(owner_client) == _truth(owner) and _truth(owner)["completed"] == 3
    assert _counts(owner_client, "/gallery/?starred=1")[""] == 0
    owner_client.post(f"/gallery/{settled[1].public_id}/star/", HTTP_X_REQUESTED_WITH="fetch")
    assert _counts(owner_client, "/gallery/?starred=1") == _truth(owner, favorite=True)
    assert _truth(owner, favorite=True)["completed"] == 1


@pytest.mark.django_db
def test_a_running_card_polled_again_unchanged_is_a_304_and_changed_is_fresh(
    owner_client, owner, stranger, make_generation
):
    gen = make_generation(owner, status=Generation.Status.RUNNING, progress=0.2)
    url = f"/g/{gen.public_id}/card/"
    first = owner_client.get(url)
    etag = first["ETag"]
    assert first.status_code == 200 and first["Cache-Control"] == "private, no-cache"
    again = owner_client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    # Another user asking with the same tag gets a 404, not a 304.
    other = Client()
    other.force_login(stranger)
    assert other.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 404
    Generation.objects.filter(pk=gen.pk).update(progress=0.7)  # even without updated_at
    moved = owner_client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and 'value="70"' in moved.content.decode()
    Generation.objects.get(pk=gen.pk).complete()
    done = owner_client.get(url, HTTP_IF_NONE_MATCH=moved["ETag"])
    assert done.status_code == 200 and 'data-status="completed"' in done.content.decode()
    assert not done.has_header("ETag")  # a finished card's image URLs expire: never a 304
