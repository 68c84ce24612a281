"""Issue #18 — "Download these as ZIP": an export of a filtered gallery view, built by a real
Celery worker into S3 (moto's server over loopback), downloaded over HTTP through the link its
page gives; every image decodes and metadata.json / metadata.csv match the rows exactly.
Also: the limit, one export at a time, another user's export, the expiry and the cleanup."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from datetime import timedelta

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from PIL import Image

from generator.export_tasks import clean_exports
from generator.models import Export, Generation, OutputImage
from tests import s3server
from tests.conftest import image_row, seeded_model

s3, s3_endpoint = s3server.s3, s3server.s3_endpoint


def image_bytes(n: int, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 8), (n % 256, (n * 7) % 256, (n * 13) % 256)).save(out, format=fmt)
    return out.getvalue()


def make_history(
    user,
    model,
    count: int,
    *,
    status=Generation.Status.COMPLETED,
    start=0,
    images: bool = True,
    starred: bool = False,
) -> list[Generation]:
    """`count` generations of `user` on `model`, one real small image each (PNG and WebP in
    turn) written straight to storage; rows by bulk_create, as fast as a test can make them."""
    now = timezone.now()
    gens = Generation.objects.bulk_create(
        Generation(
            user=user,
            model=model,
            provider=model.provider,
            prompt=f'prompt {start + i}: a fox, "quoted", ümlaut',
            negative_prompt=f"blurry {i % 3}" if i % 2 else "",
            status=status,
            options={"size": "512x512", "n": i % 4},
            seed=1000 + start + i,
            tag_sent=user.public_id,
            favorite=starred,
            created_at=now - timedelta(minutes=start + i),
            finished_at=now - timedelta(minutes=start + i) + timedelta(seconds=3),
        )
        for i in range(count)
    )
    if images:
        rows = []
        for i, gen in enumerate(gens):
            fmt, ctype, ext = (
                ("PNG", "image/png", "png") if i % 2 else ("WEBP", "image/webp", "webp")
            )
            data = image_bytes(start + i, fmt)
            row = image_row(gen, folder=user.public_id)
            row.file = default_storage.save(
                row.file.name.replace(".png", f".{ext}"), ContentFile(data)
            )
            row.thumbnail = ""
            row.content_type, row.bytes = ctype, len(data)
            rows.append(row)
        OutputImage.objects.bulk_create(rows)
    return gens


def expected_metadata(gens: list[Generation]) -> list[dict]:
    """What metadata.json must say, from the rows themselves, newest first as the gallery."""
    out = []
    for gen in sorted(gens, key=lambda g: (g.created_at, g.pk), reverse=True):
        gen.refresh_from_db()
        names = [f"images/{img.download_name}" for img in gen.images.all()]
        out.append(
            {
                "id": gen.public_id,
                "prompt": gen.prompt,
                "negative_prompt": gen.negative_prompt,
                "model": gen.model.slug,
                "provider": gen.provider,
                "seed": gen.seed,
                "options": gen.options,
                "status": gen.status,
                "created_at": gen.created_at.isoformat(),
                "finished_at": gen.finished_at.isoformat() if gen.finished_at else None,
                "images": names,
            }
        )
    return out


def check_archive(data: bytes, expected: list[dict]) -> zipfile.ZipFile:
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    meta = json.loads(zf.read("metadata.json"))
    assert meta == expected
    rows = list(csv.DictReader(io.StringIO(zf.read("metadata.csv").decode("utf-8"))))
    assert [r["id"] for r in rows] == [m["id"] for m in expected]
    for row, m in zip(rows, expected, strict=True):
        assert row["prompt"] == m["prompt"] and row["negative_prompt"] == m["negative_prompt"]
        assert row["model"] == m["model"] and row["provider"] == m["provider"]
        assert row["seed"] == str(m["seed"]) and json.loads(row["options"]) == m["options"]
        assert row["created_at"] == m["created_at"] and row["images"].split() == m["images"]
    image_names = sorted(n for n in zf.namelist() if n.startswith("images/"))
    assert image_names == sorted(n for m in expected for n in m["images"])
    for name in image_names:
        info = zf.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED  # images are compressed already
        with Image.open(io.BytesIO(zf.read(name))) as img:
            img.load()  # decodes fully
            assert img.format == ("PNG" if name.endswith(".png") else "WEBP")
    return zf


def wait_final(client, url: str, timeout: float = 180) -> tuple[dict, list[int]]:
    seen, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        state = client.get(url).json()
        seen.append(state["done"])
        if state["status"] not in ("queued", "running"):
            return state, seen
        time.sleep(0.2)
    raise AssertionError(f"export still {state} after {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_500_images_built_by_a_real_worker_on_s3_download_decode_and_match(
    s3, start_worker, owner, owner_client, local_model
):
    wide = seeded_model("local-wide")
    wanted = make_history(owner, local_model, 500)
    make_history(owner, wide, 20, start=500)  # another model: filtered out
    make_history(owner, local_model, 10, start=520, status=Generation.Status.FAILED, images=False)
    worker = start_worker(**s3.env())

    started = owner_client.post(
        "/gallery/exports/", {"model": "local-sketch", "status": "completed"}
    )
    assert started.status_code == 302
    export_url = started["Location"]
    export = Export.objects.get()
    assert export_url == f"/gallery/exports/{export.public_id}/"
    assert export.total == 500 and export.filters["status"] == "completed"

    state, seen = wait_final(owner_client, f"{export_url}status/")
    assert state["status"] == "completed", (state, worker.log())
    assert state["done"] == state["total"] == 500
    assert seen == sorted(seen)  # progress only moves forward
    export.refresh_from_db()
    assert export.file_name == f"exports/{owner.public_id}/{export.public_id}.zip"
    assert export.file_name in s3.keys()
    assert export.expires_at - export.finished_at == timedelta(days=1)

    page = owner_client.get(export_url).content.decode()
    assert "<progress" in page
    link = re.search(r'id="export-download" href="([^"]+)"', page).group(1)
    assert link == state["download_url"]
    redirect = owner_client.get(link)
    assert redirect.status_code == 302 and redirect["Location"].startswith(s3.endpoint)
    got = httpx.get(redirect["Location"], timeout=30)
    assert got.status_code == 200
    assert got.headers["content-disposition"].startswith("attachment")
    assert len(got.content) == export.bytes
    zf = check_archive(got.content, expected_metadata(wanted))
    assert len([n for n in zf.namelist() if n.startswith("images/")]) == 500


@pytest.fixture
def eager_export(owner, owner_client, local_model, django_capture_on_commit_callbacks):
    """An export built in-process (eager Celery) on local disk: two starred of five."""

    def make(data: dict) -> Export:
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post("/gallery/exports/", data)
        assert response.status_code == 302, response
        return Export.objects.get(public_id=response["Location"].split("/")[-2])

    return make


@pytest.mark.django_db
def test_a_starred_filter_is_honoured_and_the_link_404s_after_expiry(
    owner, owner_client, stranger, local_model, eager_export
):
    make_history(owner, local_model, 3)
    starred = make_history(owner, local_model, 2, start=3, starred=True)
    export = eager_export({"starred": "1", "q": "fox"})
    assert export.status == Export.Status.COMPLETED, export.error
    link = f"/gallery/exports/{export.public_id}/download/"
    response = owner_client.get(link)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    check_archive(b"".join(response.streaming_content), expected_metadata(starred))

    client = Client()
    client.force_login(stranger)  # another user's export: 404 on every URL of it
    for suffix in ("", "status/", "download/"):
        assert client.get(f"/gallery/exports/{export.public_id}/{suffix}").status_code == 404

    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert owner_client.get(link).status_code == 404
    page = owner_client.get(f"/gallery/exports/{export.public_id}/").content.decode()
    assert "This export has expired" in page and 'id="export-expired" hidden' not in page
    assert owner_client.get(f"/gallery/exports/{export.public_id}/status/").json()["expired"]
    assert default_storage.exists(export.file_name)
    assert clean_exports() == {"deleted": 1, "stale": 0}
    assert not default_storage.exists(export.file_name)
    assert Export.objects.get(pk=export.pk).file_name == ""


@pytest.mark.django_db
def test_more_than_the_limit_is_refused_with_a_clear_message(
    owner, owner_client, local_model, settings
):
    settings.EASEL_EXPORT_MAX_IMAGES = 3
    make_history(owner, local_model, 4)
    response = owner_client.post("/gallery/exports/", {"model": "local-sketch"}, follow=True)
    assert "This view holds 4 images; one export holds at most 3." in response.content.decode()
    assert response.redirect_chain[-1][0] == "/gallery/?model=local-sketch"
    assert not Export.objects.exists()


@pytest.mark.django_db
def test_one_export_at_a_time_and_an_empty_view_is_refused(owner, owner_client, local_model):
    make_history(owner, local_model, 2)
    running = Export.start(owner, {}, "", 2)
    running.claim()
    response = owner_client.post("/gallery/exports/", {}, follow=True)
    assert "You already have an export in progress" in response.content.decode()
    assert response.redirect_chain[-1][0] == f"/gallery/exports/{running.public_id}/"
    assert Export.objects.count() == 1
    nothing = owner_client.post("/gallery/exports/", {"q": "no such prompt"}, follow=True)
    assert "match no images" in nothing.content.decode()
    assert Export.objects.count() == 1


@pytest.mark.django_db
def test_a_bad_filter_is_a_400_and_a_stale_export_is_failed_by_the_cleanup(
    owner, owner_client, local_model
):
    assert owner_client.post("/gallery/exports/", {"status": "nope"}).status_code == 400
    assert owner_client.get("/gallery/exports/").status_code == 405
    assert not Export.objects.exists()
    lost = Export.start(owner, {}, "", 1)
    lost.claim()
    Export.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert clean_exports() == {"deleted": 0, "stale": 1}
    lost.refresh_from_db()
    assert lost.status == Export.Status.FAILED and "start it again" in lost.error


@pytest.mark.django_db
def test_the_gallery_offers_the_button_with_its_filters(owner, owner_client, local_model):
    make_history(owner, local_model, 1)
    page = owner_client.get("/gallery/?model=local-sketch&q=fox").content.decode()
    assert 'form="export-form"' in page and "Download these as ZIP" in page
    form = re.search(
        r'<form method="post" action="/gallery/exports/" id="export-form".*?</form>', page
    )
    assert 'name="model" value="local-sketch"' in form.group(0)
    assert 'name="q" value="fox"' in form.group(0)
    assert "csrfmiddlewaretoken" in form.group(0)
