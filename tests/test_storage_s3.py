"""Easel's own bucket: every image on a page is a fresh presigned URL of a private S3 bucket.

Runs against moto's S3 server over real HTTP on loopback (tests/s3server.py). moto does not
enforce expiry, so the lifetime is read from the URL's X-Amz-Date / X-Amz-Expires.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from storages.backends.s3 import S3Storage

from generator.counters import PRESIGN_SAFETY_MARGIN
from generator.image_urls import cache_timeout
from generator.models import Generation, OutputImage
from generator.tasks import run_generation
from tests import s3server
from tests.conftest import image_row, require

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint  # fixtures from the S3 test equipment
Q = Generation.Status


def completed_on_s3(owner, make_generation) -> Generation:
    gen = make_generation(owner, status=Q.QUEUED)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Q.COMPLETED, gen.error
    return gen


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_generation_is_stored_in_the_bucket_and_shown_through_presigned_urls(
    s3, owner, owner_client, make_generation
):
    gen = completed_on_s3(owner, make_generation)
    image = gen.images.get()
    assert s3.keys() == sorted([image.file.name, image.thumbnail.name])
    assert image.file.name.startswith(f"generations/{owner.public_id}/{gen.public_id}/")
    original, thumbnail = s3.get(image.file.name), s3.get(image.thumbnail.name)
    assert original[:8] == b"\x89PNG\r\n\x1a\n" and thumbnail[:4] == b"RIFF"

    grid = owner_client.get("/gallery/")
    thumb_url = html.unescape(re.search(r'<img src="([^"]+)"', grid.content.decode()).group(1))
    assert thumb_url.startswith(f"{s3.endpoint}/{s3.bucket}/{image.thumbnail.name}?")
    assert re.search(
        r'<img src="[^"]*_thumb\.webp\?[^"]*"[^>]*loading="lazy"', grid.content.decode()
    )

    detail = owner_client.get(f"/gallery/{gen.public_id}/")
    url = detail.context["gen"].images.all()[0].url
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/{image.file.name}?")
    assert html.escape(url) in detail.content.decode()

    got_thumb, got_original = httpx.get(thumb_url), httpx.get(url)
    assert got_thumb.status_code == 200 and got_thumb.content == thumbnail
    assert got_original.status_code == 200 and got_original.content == original
    assert got_original.headers["Content-Type"] == "image/png"


def test_the_bucket_stays_private_and_an_unsigned_url_is_refused(s3, owner, make_generation):
    image = completed_on_s3(owner, make_generation).images.get()
    unsigned = f"{s3.endpoint}/{s3.bucket}/{image.file.name}"
    assert httpx.get(unsigned).status_code == 403
    # (moto does not verify signatures, so a tampered one cannot be tested here; a real S3/R2 does.)
    grantees = [g["Grantee"].get("URI", "") for g in s3.acl_grants(image.file.name)]
    assert not any("AllUsers" in uri or "AuthenticatedUsers" in uri for uri in grantees)


@pytest.mark.parametrize("lifetime", [3600, 900])
def test_presigned_urls_are_sigv4_with_the_configured_lifetime(
    s3, settings, owner, owner_client, make_generation, lifetime
):
    settings.AWS_QUERYSTRING_EXPIRE = lifetime
    gen = completed_on_s3(owner, make_generation)
    before = datetime.now(UTC).replace(microsecond=0)
    url = owner_client.get(f"/gallery/{gen.public_id}/").context["gen"].images.all()[0].url
    params = query(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == str(lifetime)
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before - timedelta(seconds=5) <= signed_at <= datetime.now(UTC)
    assert "X-Amz-Credential" in params and "X-Amz-Signature" in params


def test_a_cached_url_is_handed_out_only_until_shortly_before_it_expires():
    assert cache_timeout(3600) == 3600 - PRESIGN_SAFETY_MARGIN
    assert cache_timeout(600) == 300  # short lifetimes: half, so a URL never reaches a page stale
    assert cache_timeout(1) == 1


@pytest.mark.parametrize("cache_backend", ["locmem", "redis"])
def test_a_page_of_200_images_signs_nothing_it_signed_on_the_previous_view(
    s3, settings, owner, owner_client, make_generation, monkeypatch, cache_backend
):
    if cache_backend == "redis":
        redis_url = os.environ.get("REDIS_URL", "")
        require(bool(redis_url), "REDIS_URL is not set")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": f"test-presign-{uuid.uuid4().hex}",
            }
        }
    else:
        # locmem culls at 300 entries by default; a page of 200 images needs 400.
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"presign-{uuid.uuid4().hex}",
                "OPTIONS": {"MAX_ENTRIES": 5000},
            }
        }
    # Rows that point at object keys: signing is local (HMAC), it needs no object behind it.
    gens = [make_generation(owner, prompt=f"fox {i}") for i in range(200)]
    OutputImage.objects.bulk_create(image_row(g, size=512, folder=owner.public_id) for g in gens)
    signed: list[str] = []
    real_url = S3Storage.url

    def counting_url(self, name, *args, **kwargs):
        signed.append(name)
        return real_url(self, name, *args, **kwargs)

    monkeypatch.setattr(S3Storage, "url", counting_url)

    first = owner_client.get("/gallery/?page_size=200")
    assert len(first.context["page"]) == 200
    assert len(set(signed)) == 400  # 200 thumbnails + 200 originals, each signed once
    first_urls = re.findall(r'<img src="([^"]+)"', first.content.decode())
    assert len(first_urls) == 200

    signed.clear()
    second = owner_client.get("/gallery/?page_size=200")
    assert signed == []  # every URL came from the cache
    assert re.findall(r'<img src="([^"]+)"', second.content.decode()) == first_urls


def test_a_changed_lifetime_mints_new_urls_instead_of_reusing_old_ones(
    s3, settings, owner, owner_client, make_generation
):
    gen = completed_on_s3(owner, make_generation)
    page = f"/gallery/{gen.public_id}/"
    first = owner_client.get(page).context["gen"].images.all()[0].url
    settings.AWS_QUERYSTRING_EXPIRE = 1200
    second = owner_client.get(page).context["gen"].images.all()[0].url
    assert query(first)["X-Amz-Expires"] == "3600" and query(second)["X-Amz-Expires"] == "1200"


def test_download_redirects_to_a_presigned_attachment_url(s3, owner, owner_client, make_generation):
    gen = completed_on_s3(owner, make_generation)
    image = gen.images.get()
    response = owner_client.get(f"/gallery/{gen.public_id}/download/0/")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.bucket}/{image.file.name}?")
    assert "response-content-disposition" in query(location)
    got = httpx.get(location)
    assert got.status_code == 200
    assert got.content == s3.get(image.file.name)
    assert got.headers["Content-Disposition"] == (
        f'attachment; filename="easel-{gen.public_id}-1.png"'
    )


def test_a_stranger_cannot_download_or_delete_on_s3(s3, owner, client, stranger, make_generation):
    gen = completed_on_s3(owner, make_generation)
    client.force_login(stranger)
    assert client.get(f"/gallery/{gen.public_id}/download/0/").status_code == 404
    assert client.post(f"/gallery/{gen.public_id}/delete/").status_code == 404
    assert len(s3.keys()) == 2


def test_deleting_a_generation_removes_its_objects_from_the_bucket(
    s3, owner, owner_client, make_generation, django_capture_on_commit_callbacks
):
    gen = completed_on_s3(owner, make_generation)
    keep = completed_on_s3(owner, make_generation)
    assert len(s3.keys()) == 4
    image = gen.images.get()
    url = default_storage.url(image.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/gallery/{gen.public_id}/delete/")
    assert response.status_code == 302
    assert not Generation.objects.filter(pk=gen.pk).exists()
    kept = keep.images.get()
    assert s3.keys() == sorted([kept.file.name, kept.thumbnail.name])
    assert httpx.get(url).status_code == 404


def test_maintenance_removes_orphaned_objects_and_rebuilds_thumbnails_on_s3(
    s3, owner, make_generation
):
    gen = completed_on_s3(owner, make_generation)
    image = gen.images.get()
    orphan = f"generations/{owner.public_id}/g_gone/0.png"
    s3.put(orphan, b"left behind")
    default_storage.delete(image.thumbnail.name)
    call_command("storage_maintenance", "--min-age", "0", stdout=(out := _Out()))
    image.refresh_from_db()
    assert orphan not in s3.keys()
    assert sorted([image.file.name, image.thumbnail.name]) == s3.keys()
    assert s3.get(image.thumbnail.name)[:4] == b"RIFF"
    assert "1 orphaned object(s) removed" in out.text
    assert "1 thumbnail(s) re-created" in out.text


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, value):
        self.text += value

    def flush(self):
        pass


def _settings_from_env(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import json, django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "from django.conf import settings;"
        "print(json.dumps({'backend': settings.STORAGE_BACKEND, 'storage': settings.STORAGES['default'],"
        " 'expire': getattr(settings, 'AWS_QUERYSTRING_EXPIRE', None)}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )


def test_s3_storage_is_chosen_by_environment_with_django_storages_names():
    got = _settings_from_env(
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="easel-images",
        AWS_S3_ENDPOINT_URL="https://acct.r2.cloudflarestorage.com",
        AWS_S3_REGION_NAME="auto",
        AWS_ACCESS_KEY_ID="id",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_QUERYSTRING_EXPIRE="1800",
    )
    assert got.returncode == 0, got.stderr
    config = json.loads(got.stdout)
    options = config["storage"]["OPTIONS"]
    assert config["storage"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert options["bucket_name"] == "easel-images"
    assert options["endpoint_url"] == "https://acct.r2.cloudflarestorage.com"
    assert options["region_name"] == "auto"
    assert options["signature_version"] == "s3v4"
    assert options["querystring_auth"] is True and options["default_acl"] is None
    assert options["querystring_expire"] == 1800 == config["expire"]


def test_a_bad_presign_lifetime_stops_start_up():
    got = _settings_from_env(
        STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="b", AWS_QUERYSTRING_EXPIRE="999999999"
    )
    assert got.returncode != 0
    assert "AWS_QUERYSTRING_EXPIRE must be 60–604800 seconds" in got.stderr


def test_the_embedded_default_is_local_disk():
    got = _settings_from_env()
    assert got.returncode == 0, got.stderr
    config = json.loads(got.stdout)
    assert config["backend"] == "local"
    assert config["storage"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_a_storage_failure_fails_the_generation_readably_and_leaves_nothing(
    s3, settings, owner, make_generation
):
    # A bucket that does not exist: every write is refused by the S3 server.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "no-such-bucket"},
        },
    }
    gen = make_generation(owner, status=Q.QUEUED)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Q.FAILED
    assert "could not save the images to its storage" in gen.error
    assert not OutputImage.objects.filter(generation=gen).exists()
    assert s3.keys() == []
