"""Issue #18 — retention: images of finished generations older than their model's retention
leave the bucket (moto S3 server over loopback, tests/s3server.py); the generations stay,
marked expired. Two runs at once, a dry run, storage errors, and the beat task on a real
worker. The pages, the API and Re-run: test_retention_pages.py; Chromium: _browser.py."""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from PIL import Image
from storages.backends.s3 import S3Storage

from generator import retention
from generator.imaging import make_thumbnail
from generator.models import AIModel, Generation, OutputImage, RetentionPolicy, UsageEntry
from tests import s3server

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
Q = Generation.Status


def png(size: int = 24, color=(180, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


def stored(user, model, make_generation, *, days, status=Q.COMPLETED, photo=False, **kw):
    """A generation `days` old (finished then, if final) with real objects in storage: an
    image and its thumbnail when completed, the uploaded photo if `photo`."""
    when = timezone.now() - timedelta(days=days)
    kw.setdefault("finished_at", when if status in Generation.FINAL else None)
    gen = make_generation(user, model=model, status=status, created_at=when, **kw)
    if status == Q.COMPLETED:
        data = png()
        thumb = make_thumbnail(data)
        image = OutputImage(
            generation=gen,
            index=0,
            width=24,
            height=24,
            bytes=len(data),
            thumbnail_bytes=len(thumb),
            content_type="image/png",
        )
        image.file.save("0.png", ContentFile(data), save=False)
        image.thumbnail.save("0_thumb.webp", ContentFile(thumb), save=False)
        image.save()
    if photo:
        gen.input_image.save("photo.png", ContentFile(png(color=(20, 90, 200))), save=True)
    UsageEntry.objects.charge(gen)
    return gen


def object_names(gen: Generation) -> set[str]:
    names = {n for img in gen.images.all() for n in (img.file.name, img.thumbnail.name) if n}
    return names | ({gen.input_image.name} if gen.input_image else set())


@dataclass
class Scene:
    """Global 30 days; model A (local-sketch) keeps 7, model B (local-wide) has no override."""

    a: object
    b: object
    due: list[Generation] = field(default_factory=list)  # what must expire
    kept: list[Generation] = field(default_factory=list)  # what must stay as it is


@pytest.fixture
def scene(owner, stranger, local_model, wide_model, make_generation) -> Scene:
    RetentionPolicy.objects.create(keep_days=30)
    local_model.retention_days = 7
    local_model.save()
    s = Scene(a=local_model, b=wide_model)

    def add(bucket, user, model, **kw):
        bucket.append(stored(user, model, make_generation, **kw))

    add(s.due, owner, s.a, days=10, photo=True)  # A: 7 days
    add(s.due, owner, s.a, days=8, favorite=True)  # starred is not exempt
    add(s.due, owner, s.a, days=9, status=Q.FAILED, photo=True)  # only its photo is stored
    add(s.due, stranger, s.a, days=20)
    add(s.due, owner, s.b, days=40, photo=True)  # B: the global 30
    add(s.due, owner, s.b, days=45, finished_at=None)  # no finished_at: its created_at counts
    add(s.kept, owner, s.a, days=3, photo=True)
    add(s.kept, owner, s.a, days=6.9)
    add(s.kept, owner, s.b, days=10)
    add(s.kept, owner, s.b, days=29)
    add(s.kept, owner, s.a, days=60, status=Q.RUNNING, photo=True)  # active: never touched
    add(s.kept, owner, s.b, days=50, status=Q.QUEUED, photo=True)
    return s


def expected_counts(gens: list[Generation]) -> dict[str, int]:
    images = [img for gen in gens for img in gen.images.all()]
    photos = sum(bool(gen.input_image) for gen in gens)
    return {
        "generations": len(gens),
        "images": len(images),
        "photos": photos,
        "objects": sum(len(object_names(gen)) for gen in gens),
        "bytes": sum(img.bytes + img.thumbnail_bytes for img in images),
    }


def expected_by_model(due: list[Generation]) -> dict[str, dict[str, int]]:
    """Every model is under the global 30 days or its own: each has a line (most with 0)."""
    return {
        slug: expected_counts([g for g in due if g.model.slug == slug])
        for slug in AIModel.objects.values_list("slug", flat=True)
    }


REPORT_LINE = re.compile(
    r"^(?P<slug>[\w-]+) \(kept (?P<days>\d+) days, [^)]*\): (?P<generations>\d+) generation\(s\), "
    r"(?P<images>\d+) image\(s\), (?P<photos>\d+) photo\(s\), (?P<objects>\d+) object\(s\), "
    r"(?P<bytes>\d+) bytes",
    re.M,
)


def parse_report(text: str) -> dict[str, dict[str, int]]:
    return {
        m["slug"]: {k: int(v) for k, v in m.groupdict().items() if k != "slug"}
        for m in REPORT_LINE.finditer(text)
    }


def snapshot(gens: list[Generation]) -> list[tuple]:
    rows = Generation.objects.filter(pk__in=[g.pk for g in gens]).order_by("pk")
    return [
        (g.pk, g.status, g.images_expired_at, g.input_image.name, g.updated_at, g.images.count())
        for g in rows
    ]


def test_exactly_the_generations_past_their_models_retention_lose_their_objects(
    s3, scene, django_capture_on_commit_callbacks
):
    before = set(s3.keys())
    doomed = set().union(*(object_names(g) for g in scene.due))
    assert doomed and doomed <= before
    kept_before = snapshot(scene.kept)
    ledger = list(UsageEntry.objects.order_by("pk").values_list("pk", "kind", "images"))
    sizes = {k: s3.client.head_object(Bucket=s3.bucket, Key=k)["ContentLength"] for k in doomed}
    want = expected_by_model(scene.due)

    with django_capture_on_commit_callbacks(execute=True):
        reports = retention.run()

    assert set(s3.keys()) == before - doomed  # the bucket, listed: exactly those went
    got = {r.model.slug: {k: getattr(r, k) for k in want[r.model.slug]} for r in reports}
    assert got == want
    days = {r.model.slug: (r.days, r.source) for r in reports}
    assert days[scene.a.slug] == (7, "model") and days[scene.b.slug] == (30, "global")
    assert want[scene.a.slug]["generations"] == 4 and want[scene.b.slug]["generations"] == 2
    # The bytes reported are the bytes the bucket held for those originals and thumbnails.
    assert sum(r.bytes for r in reports) == sum(
        n for k, n in sizes.items() if not k.startswith("inputs/")
    )
    for gen in scene.due:
        row = Generation.objects.get(pk=gen.pk)
        assert row.images_expired_at is not None and not row.input_image
        assert row.status == gen.status and row.prompt == gen.prompt and row.options == gen.options
        assert not OutputImage.objects.filter(generation=row).exists()
    assert snapshot(scene.kept) == kept_before  # others untouched, active ones included
    assert list(UsageEntry.objects.order_by("pk").values_list("pk", "kind", "images")) == ledger

    with django_capture_on_commit_callbacks(execute=True):
        again = retention.run()
    assert sum(r.generations + r.objects for r in again) == 0
    assert set(s3.keys()) == before - doomed


def test_a_dry_run_names_the_counts_and_leaves_the_bucket_alone(
    s3, scene, django_capture_on_commit_callbacks
):
    before = s3.keys()
    doomed = set().union(*(object_names(g) for g in scene.due))
    rows_before = snapshot(scene.due + scene.kept)
    want = expected_by_model(scene.due)

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("retention", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "Dry run: nothing is deleted." in text and "would go" in text
    dry = parse_report(text)
    assert {slug: {k: v for k, v in r.items() if k != "days"} for slug, r in dry.items()} == want
    assert s3.keys() == before
    assert snapshot(scene.due + scene.kept) == rows_before

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("retention", stdout=out)  # the same path for real: the same figures
    assert parse_report(out.getvalue()) == dry and "removed" in out.getvalue()
    assert set(s3.keys()) == set(before) - doomed


def test_no_retention_anywhere_keeps_everything(s3, owner, local_model, make_generation, settings):
    settings.EASEL_RETENTION_DAYS = None
    gen = stored(owner, local_model, make_generation, days=3000, photo=True)
    out = io.StringIO()
    call_command("retention", stdout=out)
    assert "every image is kept" in out.getvalue()
    assert object_names(gen) <= set(s3.keys())
    assert Generation.objects.get(pk=gen.pk).images_expired_at is None


def test_the_environment_default_applies_until_staff_save_a_policy(
    owner, local_model, make_generation, settings, django_capture_on_commit_callbacks
):
    settings.EASEL_RETENTION_DAYS = 5
    old = stored(owner, local_model, make_generation, days=6)
    assert RetentionPolicy.global_days() == 5
    RetentionPolicy.objects.create(keep_days=None)  # staff chose "forever": the row wins
    assert RetentionPolicy.global_days() is None
    with django_capture_on_commit_callbacks(execute=True):
        assert retention.run() == []
    RetentionPolicy(keep_days=7).save()  # a second save edits the one row
    assert RetentionPolicy.objects.get().keep_days == 7
    RetentionPolicy.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        retention.run()
    assert Generation.objects.get(pk=old.pk).images_expired_at is not None


def test_an_expired_generation_is_never_expired_again(owner, local_model, make_generation):
    local_model.retention_days = 1
    local_model.save()
    gen = stored(owner, local_model, make_generation, days=2)
    first = Generation.expire_images([gen.pk], timezone.now())
    second = Generation.expire_images([gen.pk], timezone.now())
    assert [g.pk for g in first] == [gen.pk] and second == []


@pytest.mark.django_db(transaction=True)
def test_a_run_skips_a_row_another_transaction_holds_without_waiting(
    owner, local_model, make_generation
):
    local_model.retention_days = 1
    local_model.save()
    gen = stored(owner, local_model, make_generation, days=2)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:  # another beat (or a user's Delete) in the middle of its transaction
        try:
            with transaction.atomic():
                Generation.objects.select_for_update().filter(pk=gen.pk).first()
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    started = time.monotonic()
    skipped = retention.run()
    waited = time.monotonic() - started
    release.set()
    holder.join()
    assert sum(r.generations for r in skipped) == 0 and waited < 5  # SKIP LOCKED: no wait
    assert Generation.objects.get(pk=gen.pk).images_expired_at is None
    assert sum(r.generations for r in retention.run()) == 1  # the next run takes it


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_expire_each_generation_once(owner, local_model, make_generation):
    local_model.retention_days = 1
    local_model.save()
    gens = [stored(owner, local_model, make_generation, days=2 + i / 10) for i in range(30)]
    totals: list[int] = []
    gate = threading.Barrier(2)

    def beat() -> None:
        try:
            gate.wait(10)
            totals.append(sum(r.generations for r in retention.run(batch=4)))
        finally:
            connection.close()

    beats = [threading.Thread(target=beat) for _ in range(2)]
    for t in beats:
        t.start()
    for t in beats:
        t.join(60)
    assert len(totals) == 2 and sum(totals) == len(gens)
    assert not Generation.objects.filter(images_expired_at__isnull=True).exists()
    assert not OutputImage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_runs_on_a_real_worker(s3, start_worker, owner, local_model, make_generation):
    RetentionPolicy.objects.create(keep_days=30)
    old = stored(owner, local_model, make_generation, days=31)
    keep = stored(owner, local_model, make_generation, days=2)
    names = object_names(old)
    start_worker(**s3.env())
    from config.celery import app

    app.send_task(settings.CELERY_BEAT_SCHEDULE["expire-old-images"]["task"])  # what beat sends
    end = time.monotonic() + 60
    while time.monotonic() < end and not Generation.objects.get(pk=old.pk).images_expired_at:
        time.sleep(0.2)
    assert Generation.objects.get(pk=old.pk).images_expired_at is not None
    while time.monotonic() < end and names & set(s3.keys()):
        time.sleep(0.2)  # the objects go right after the batch commits
    assert not names & set(s3.keys()) and object_names(keep) <= set(s3.keys())
    assert Generation.objects.get(pk=keep.pk).images_expired_at is None


def test_a_photo_another_generation_still_uses_stays(
    s3, owner, local_model, make_generation, django_capture_on_commit_callbacks
):
    local_model.retention_days = 7
    local_model.save()
    old = stored(owner, local_model, make_generation, days=9, photo=True)
    recent = stored(owner, local_model, make_generation, days=1)
    Generation.objects.filter(pk=recent.pk).update(input_image=old.input_image.name)
    with django_capture_on_commit_callbacks(execute=True):
        retention.run()
    assert Generation.objects.get(pk=old.pk).input_image.name == ""
    assert old.input_image.name in s3.keys()  # `recent` still shows it
    assert not {n for n in object_names(old) if n.startswith("generations/")} & set(s3.keys())


def test_a_storage_error_after_commit_leaves_an_orphan_that_maintenance_removes(
    s3, owner, local_model, make_generation, monkeypatch, django_capture_on_commit_callbacks
):
    local_model.retention_days = 7
    local_model.save()
    old = stored(owner, local_model, make_generation, days=9, photo=True)
    names = object_names(old)

    def refuse(self, name):
        raise OSError("storage unavailable")

    monkeypatch.setattr(S3Storage, "delete", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        reports = retention.run()
    assert sum(r.generations for r in reports) == 1  # the database side is done
    assert Generation.objects.get(pk=old.pk).images_expired_at is not None
    assert names <= set(s3.keys())  # nothing could be deleted: orphans now
    monkeypatch.undo()
    call_command("storage_maintenance", "--min-age", "0", "--skip-thumbnails", stdout=io.StringIO())
    assert not names & set(s3.keys())
