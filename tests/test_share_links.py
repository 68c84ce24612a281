"""Issue #18 — share a generation: a revocable, expiring public link that shows the images (and
the prompt only if ticked), never who made it, `noindex` unless opted in, with Open Graph tags;
revoked, expired and unknown links are one and the same 404, also through a site-wide cache.

Local disk here (the test's own media folder); the S3 case (moto) is tests/test_share_s3.py,
the browser flow tests/test_share_browser.py.
"""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from generator.models import Generation, ShareLink
from generator.tasks import run_generation
from tests.conftest import require

pytestmark = pytest.mark.django_db
PROMPT = "a quiet lighthouse keeper painting gulls"


@pytest.fixture
def gen(owner, make_generation) -> Generation:
    """A completed generation of the owner's with one real image in storage."""
    gen = make_generation(owner, status=Generation.Status.QUEUED, prompt=PROMPT)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    return gen


def share(client, gen, **fields) -> ShareLink:
    before = set(ShareLink.objects.values_list("pk", flat=True))
    data = {"expiry": "never", **fields}
    response = client.post(reverse("gallery:share", args=[gen.public_id]), data)
    assert response.status_code == 302, response.content[:500]
    (link,) = ShareLink.objects.exclude(pk__in=before)
    return link


def public(token: str) -> str:
    return reverse("share:page", args=[token])


def metas(page: str) -> dict[str, str]:
    """<meta property|name="…" content="…"> of a page."""
    found = re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)"', page)
    return {key: html.unescape(value) for key, value in found}


def test_the_owner_shares_and_an_anonymous_visitor_sees_the_images_and_the_prompt(
    owner_client, gen
):
    link = share(owner_client, gen, show_prompt="on", expiry="7")
    assert len(link.token) == 32 and link.show_prompt and not link.allow_indexing
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)

    detail = owner_client.get(reverse("gallery:detail", args=[gen.public_id])).content.decode()
    assert f'value="http://testserver{public(link.token)}"' in detail  # the URL to copy
    assert "Revoke" in detail

    visitor = Client()
    page = visitor.get(public(link.token))
    assert page.status_code == 200
    body = page.content.decode()
    assert PROMPT in body
    src = html.unescape(re.search(r'<img src="([^"]+)"', body).group(1))
    got = visitor.get(src)
    assert got.status_code == 200 and got["Content-Type"] == "image/png"
    image = gen.images.get()
    assert b"".join(got.streaming_content) == image.file.open("rb").read()
    link.refresh_from_db()
    assert link.view_count == 1 and link.last_viewed_at is not None


def test_without_the_tick_the_page_shows_no_prompt_and_never_the_owner(owner_client, owner, gen):
    link = share(owner_client, gen)
    response = Client().get(public(link.token))
    page = response.content.decode()
    everything = page + " ".join(f"{k}: {v}" for k, v in response.items())
    assert response.status_code == 200
    for secret in (PROMPT, "lighthouse", owner.email, owner.username, owner.public_id):
        assert secret not in everything, secret
    assert gen.public_id not in everything  # nor the owner's own id of the generation
    # Not indexed by default: the meta tag and the header.
    assert '<meta name="robots" content="noindex">' in page
    assert response["X-Robots-Tag"] == "noindex"
    # Never kept by a browser or a proxy, and the token never leaves as a Referer.
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_opting_in_to_indexing_drops_noindex(owner_client, gen):
    link = share(owner_client, gen, allow_indexing="on")
    response = Client().get(public(link.token))
    assert response.status_code == 200
    assert 'name="robots"' not in response.content.decode()
    assert not response.has_header("X-Robots-Tag")
    image = Client().get(reverse("share:image", args=[link.token, 0]))
    assert image.status_code == 200 and not image.has_header("X-Robots-Tag")


def test_open_graph_tags_preview_the_link_with_an_absolute_image_that_serves(owner_client, gen):
    link = share(owner_client, gen, show_prompt="on")
    tags = metas(Client().get(public(link.token)).content.decode())
    assert tags["og:type"] == "website"
    assert tags["og:title"] == PROMPT
    assert tags["og:url"] == f"http://testserver{public(link.token)}"
    assert tags["twitter:card"] == "summary_large_image"
    og_image = tags["og:image"]
    assert og_image.startswith("http://testserver/s/"), og_image  # absolute, no owner in it
    got = Client().get(og_image.removeprefix("http://testserver"))
    assert got.status_code == 200
    picture = Image.open(io.BytesIO(b"".join(got.streaming_content)))
    assert (str(picture.width), str(picture.height)) == (
        tags["og:image:width"],
        tags["og:image:height"],
    )
    # Without the tick the title says nothing of the prompt either.
    hidden = share(owner_client, gen)
    assert PROMPT not in metas(Client().get(public(hidden.token)).content.decode())["og:title"]


def test_revoked_expired_unknown_deleted_and_unfinished_are_the_same_404(
    owner_client, owner, gen, make_generation, django_assert_num_queries
):
    visitor = Client()
    unknown = visitor.get(public("A" * 32))
    assert unknown.status_code == 404

    expired = share(owner_client, gen)
    assert visitor.get(public(expired.token)).status_code == 200
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = share(owner_client, gen)
    revoked.revoke()
    other = make_generation(owner, status=Generation.Status.QUEUED, prompt="to be deleted")
    run_generation(other.pk)
    gone = share(owner_client, other)
    unfinished = share(owner_client, gen)  # completed when shared; something moves it on later
    Generation.objects.filter(pk=gen.pk, share_links=unfinished).update(
        status=Generation.Status.FAILED
    )
    assert owner_client.post(reverse("gallery:delete", args=[other.public_id])).status_code == 302

    for link in (expired, revoked, gone, unfinished):
        for url in (public(link.token), reverse("share:image", args=[link.token, 0])):
            response = visitor.get(url)
            assert response.status_code == 404, url
            assert response.content == unknown.content  # the same page: nothing tells them apart
    # Junk is refused by the URL converter, before any query.
    for junk in ("short", "A" * 33, "A" * 31 + "!", "%00" * 32):
        with django_assert_num_queries(0):
            assert visitor.get(f"/s/{junk}/").status_code == 404
    assert not ShareLink.objects.filter(generation_id=other.pk).exists()  # cascaded


def test_a_generation_that_has_not_completed_cannot_be_shared(owner_client, owner, make_generation):
    running = make_generation(owner, status=Generation.Status.RUNNING)
    response = owner_client.post(
        reverse("gallery:share", args=[running.public_id]), {"expiry": "1"}
    )
    assert response.status_code == 409
    assert b"Only a completed generation" in response.content
    assert not ShareLink.objects.exists()


def test_another_user_can_neither_share_nor_revoke_my_generation(owner_client, stranger, gen):
    link = share(owner_client, gen)
    other = Client()
    other.force_login(stranger)
    made = other.post(reverse("gallery:share", args=[gen.public_id]), {"expiry": "never"})
    assert made.status_code == 404 and ShareLink.objects.count() == 1
    revoke = reverse("gallery:share_revoke", args=[gen.public_id])
    assert other.post(revoke, {"link": link.pk}).status_code == 404
    link.refresh_from_db()
    assert link.is_live
    # Nor through a generation of their own, naming my link.
    theirs = Generation.objects.create(
        user=stranger, model=gen.model, provider=gen.provider, prompt="theirs", status="completed"
    )
    mixed = reverse("gallery:share_revoke", args=[theirs.public_id])
    assert other.post(mixed, {"link": link.pk}).status_code == 404
    link.refresh_from_db()
    assert link.is_live


@pytest.mark.parametrize(
    "data",
    [{}, {"expiry": "forever"}, {"expiry": "-1"}, {"expiry": "never" * 1000}, {"expiry": "2"}],
)
def test_bad_share_form_input_is_a_400_that_says_so(owner_client, gen, data):
    response = owner_client.post(reverse("gallery:share", args=[gen.public_id]), data)
    assert response.status_code == 400
    assert b'role="alert"' in response.content and b"Link expires" in response.content
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("value", ["", "abc", "1.5", "-1", "9" * 40, "١"])
def test_bad_revoke_input_is_a_400(owner_client, gen, value):
    link = share(owner_client, gen)
    response = owner_client.post(
        reverse("gallery:share_revoke", args=[gen.public_id]), {"link": value}
    )
    assert response.status_code == 400
    link.refresh_from_db()
    assert link.is_live


def test_the_owner_revokes_and_the_detail_page_says_so(owner_client, gen):
    link = share(owner_client, gen)
    assert Client().get(public(link.token)).status_code == 200
    revoke = reverse("gallery:share_revoke", args=[gen.public_id])
    response = owner_client.post(revoke, {"link": link.pk}, follow=True)
    assert response.status_code == 200 and b"Link revoked" in response.content
    assert 'data-share-state="revoked"' in response.content.decode()
    assert public(link.token) not in response.content.decode()  # no URL to copy any more
    assert Client().get(public(link.token)).status_code == 404
    first = ShareLink.objects.get(pk=link.pk).revoked_at
    again = owner_client.post(revoke, {"link": link.pk})  # a second click changes nothing
    assert again.status_code == 302
    assert first is not None and ShareLink.objects.get(pk=link.pk).revoked_at == first


def test_a_page_fetched_revoked_and_fetched_again_through_a_site_cache_is_a_404(
    owner_client, gen, settings
):
    """A deployer may put Django's whole-site cache (on Easel's Redis) in front: the public
    page's no-store keeps it out, so a revoke is seen on the very next request."""
    from tests.procs import redis_available

    require(redis_available(), "needs REDIS_URL with a running Redis")
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": django_settings.REDIS_URL,
            "KEY_PREFIX": "share-test",
        }
    }
    settings.MIDDLEWARE = [
        "django.middleware.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    settings.CACHE_MIDDLEWARE_SECONDS = 600
    from django.core.cache import cache

    cache.clear()
    link = share(owner_client, gen)
    visitor = Client()
    assert visitor.get(public(link.token)).status_code == 200
    assert visitor.get(public(link.token)).status_code == 200
    revoke = reverse("gallery:share_revoke", args=[gen.public_id])
    assert owner_client.post(revoke, {"link": link.pk}).status_code == 302
    assert visitor.get(public(link.token)).status_code == 404
    assert Client().get(public(link.token)).status_code == 404
    link.refresh_from_db()
    assert link.view_count == 2  # both views reached the view: neither came from the cache
    cache.clear()


def test_staff_see_and_revoke_links_in_the_admin(client, staff, owner, owner_client, gen):
    link = share(owner_client, gen, show_prompt="on")
    client.force_login(staff)
    listing = client.get(reverse("admin:generator_sharelink_changelist"))
    assert listing.status_code == 200
    page = listing.content.decode()
    assert owner.email in page and f"{link.token[:6]}…" in page and link.token not in page
    assert (
        client.get(reverse("admin:generator_sharelink_change", args=[link.pk])).status_code == 200
    )
    done = client.post(
        reverse("admin:generator_sharelink_changelist"),
        {"action": "revoke", "_selected_action": [link.pk]},
        follow=True,
    )
    assert b"1 link(s) revoked." in done.content
    link.refresh_from_db()
    assert link.state == ShareLink.State.REVOKED
    assert Client().get(public(link.token)).status_code == 404
    live = client.get(reverse("admin:generator_sharelink_changelist") + "?state=live")
    assert f"{link.token[:6]}…" not in live.content.decode()


def test_a_normal_user_has_no_admin_revoke(owner_client, gen):
    link = share(owner_client, gen)
    response = owner_client.post(
        reverse("admin:generator_sharelink_changelist"),
        {"action": "revoke", "_selected_action": [link.pk]},
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    link.refresh_from_db()
    assert link.is_live


def test_a_crawler_may_ask_with_head(owner_client, gen):
    link = share(owner_client, gen)
    assert Client().head(public(link.token)).status_code == 200
    assert Client().head(reverse("share:image", args=[link.token, 0])).status_code == 200
    assert Client().post(public(link.token)).status_code in (403, 405)  # nothing to post


def test_live_links_per_generation_are_capped_and_a_revoke_frees_a_place(owner_client, gen):
    from generator.sharing import MAX_LIVE_LINKS

    links = [share(owner_client, gen) for _ in range(MAX_LIVE_LINKS)]
    url = reverse("gallery:share", args=[gen.public_id])
    refused = owner_client.post(url, {"expiry": "never"})
    assert refused.status_code == 409 and b"revoke one first" in refused.content
    assert ShareLink.objects.count() == MAX_LIVE_LINKS
    links[0].revoke()
    share(owner_client, gen)
    assert ShareLink.objects.live().count() == MAX_LIVE_LINKS


def test_the_public_page_costs_three_queries(owner_client, gen, django_assert_num_queries):
    link = share(owner_client, gen)
    visitor = Client()
    with django_assert_num_queries(3):  # the link with its generation, the images, the view
        assert visitor.get(public(link.token)).status_code == 200
    with django_assert_num_queries(1):  # an unknown token: the one lookup
        assert visitor.get(public("B" * 32)).status_code == 404
