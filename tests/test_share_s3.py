"""Issue #18 — share links on S3 (moto's server over loopback, tests/s3server.py): the public
page's images are short presigned URLs of the link's own copies, whose keys name nobody; a
revoke, a deleted generation and an erased account take the copies out of the bucket."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generator.erase import erase_user
from generator.models import Generation, ShareLink
from generator.sharing import SHARE_URL_SECONDS
from tests import s3server
from tests.test_share_links import PROMPT, metas, public, share
from tests.test_storage_s3 import completed_on_s3

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint


@pytest.fixture
def gen(s3, owner, make_generation) -> Generation:
    gen = completed_on_s3(owner, make_generation)
    Generation.objects.filter(pk=gen.pk).update(prompt=PROMPT)
    gen.refresh_from_db()
    return gen


def lifetime(url: str) -> timedelta:
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    signed = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed) < timedelta(minutes=1)
    return timedelta(seconds=int(q["X-Amz-Expires"]))


def test_the_public_page_shows_short_presigned_urls_of_copies_that_name_nobody(
    s3, owner, owner_client, gen, django_capture_on_commit_callbacks
):
    image = gen.images.get()
    link = share(owner_client, gen)
    (copy,) = link.stored_names
    assert copy.startswith("shared/") and copy.endswith("/0.png")
    assert owner.public_id not in copy and gen.public_id not in copy
    assert s3.get(copy) == s3.get(image.file.name)  # a server-side copy, same bytes

    response = Client().get(public(link.token))
    page = response.content.decode()
    assert response.status_code == 200
    for secret in (owner.public_id, owner.email, gen.public_id, PROMPT, image.file.name):
        assert secret not in page, secret
    src = html.unescape(re.search(r'<img src="([^"]+)"', page).group(1))
    tags = metas(page)
    for url in (src, tags["og:image"]):
        assert url.startswith(f"{s3.endpoint}/{s3.bucket}/{copy}?"), url
        assert lifetime(url) == timedelta(seconds=SHARE_URL_SECONDS) <= timedelta(seconds=600)
    got = httpx.get(tags["og:image"])
    assert got.status_code == 200 and got.content == s3.get(image.file.name)
    assert got.headers["Content-Type"] == "image/png"
    # The stable per-image address redirects to a fresh short URL of the same copy.
    hop = Client().get(reverse("share:image", args=[link.token, 0]))
    assert hop.status_code == 302 and hop["Location"].startswith(
        f"{s3.endpoint}/{s3.bucket}/{copy}?"
    )
    assert lifetime(hop["Location"]) <= timedelta(seconds=600)

    # Revoked: the page is a 404, the copy leaves the bucket, and the URL handed out dies now.
    revoke = reverse("gallery:share_revoke", args=[gen.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post(revoke, {"link": link.pk}).status_code == 302
    assert Client().get(public(link.token)).status_code == 404
    assert copy not in s3.keys() and image.file.name in s3.keys()
    assert httpx.get(src).status_code == 404


def test_deleting_the_generation_takes_its_links_and_their_copies(
    s3, owner_client, gen, django_capture_on_commit_callbacks
):
    copies = share(owner_client, gen).stored_names + share(owner_client, gen).stored_names
    assert set(copies) <= set(s3.keys()) and len(set(copies)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("gallery:delete", args=[gen.public_id]))
    assert not ShareLink.objects.exists()
    assert not [k for k in s3.keys() if k.startswith("shared/")]


def test_erasing_the_account_removes_share_links_and_their_copies(
    s3, owner, stranger, owner_client, gen, make_generation
):
    mine = share(owner_client, gen)
    theirs_gen = completed_on_s3(stranger, make_generation)
    stranger_client = Client()
    stranger_client.force_login(stranger)
    theirs = share(stranger_client, theirs_gen)
    erase_user(owner)
    assert not ShareLink.objects.filter(pk=mine.pk).exists()
    assert not set(mine.stored_names) & set(s3.keys())
    assert set(theirs.stored_names) <= set(s3.keys())  # another user's link stays
    assert Client().get(public(mine.token)).status_code == 404
    assert Client().get(public(theirs.token)).status_code == 200


def test_a_bucket_that_refuses_the_copy_makes_no_link_and_says_so(s3, owner_client, gen):
    image = gen.images.get()
    s3.client.delete_object(Bucket=s3.bucket, Key=image.file.name)  # CopyObject now fails
    response = owner_client.post(reverse("gallery:share", args=[gen.public_id]), {"expiry": "1"})
    assert response.status_code == 503
    assert b"Nothing was shared; please try again." in response.content
    assert not ShareLink.objects.exists()
    assert not [k for k in s3.keys() if k.startswith("shared/")]


def test_storage_maintenance_removes_the_copies_of_links_that_no_longer_open(s3, owner_client, gen):
    live, expired, revoked = (share(owner_client, gen) for _ in range(3))
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked.revoke()  # the model's change alone: its copies are still in the bucket
    s3.put("shared/left-by-a-crash/0.png", b"\x89PNG")  # a copy whose link was never saved
    assert set(expired.stored_names + revoked.stored_names) <= set(s3.keys())

    out = io.StringIO()
    call_command("storage_maintenance", "--min-age", "0", "--skip-thumbnails", stdout=out)
    assert "3 orphaned object(s) removed" in out.getvalue(), out.getvalue()
    shared = [k for k in s3.keys() if k.startswith("shared/")]
    assert shared == live.stored_names
    assert Client().get(public(live.token)).status_code == 200
