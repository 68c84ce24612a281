"""Retention (issue #18): images of finished generations older than their model's retention
leave storage; the generations stay, marked `images_expired_at`.

One path, `run()`, for the Celery beat task (`expire_old_images`, every
EASEL_RETENTION_INTERVAL seconds) and `manage.py retention [--dry-run]`:

- How long: `AIModel.retention_days`, else the admin's RetentionPolicy, else
  EASEL_RETENTION_DAYS; none of them = kept forever. Age is counted from `finished_at`
  (`created_at` for a final row without one). Starred generations are not exempt.
- What goes: every OutputImage row with its original and thumbnail, and the uploaded photo;
  `Generation.expire_images` makes the change in batches of BATCH, one transaction each,
  skipping rows another run has locked, so two beats never process a row twice.
- When storage is touched: only after each batch commits (a rolled-back batch keeps every
  object). A storage error then leaves an orphan and is logged; `manage.py
  storage_maintenance` removes orphans under generations/ and inputs/.
- A dry run walks the same selection in the same batches and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from generator import storage
from generator.models import AIModel, Generation, OutputImage, RetentionPolicy

logger = logging.getLogger(__name__)

BATCH = 200


@dataclass
class ModelReport:
    """What went (or would go) for one model."""

    model: AIModel
    days: int
    source: str  # "model" (its own retention_days) or "global"
    generations: int = 0
    images: int = 0  # output images; each is an original and (usually) a thumbnail
    photos: int = 0  # uploaded input photos
    objects: int = 0  # storage objects: originals, thumbnails, photos
    bytes: int = 0  # of the originals and thumbnails (a photo's size is not recorded)


def policies() -> list[tuple[AIModel, int, str]]:
    """(model, days, source) for every model whose images are not kept forever."""
    global_days = RetentionPolicy.global_days()
    found = []
    for model in AIModel.objects.order_by("pk"):
        days, source = RetentionPolicy.days_for(model, global_days)
        if days:
            found.append((model, days, source))
    return found


def _stats(ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """{generation id: (images, objects, bytes)} of these generations' stored images."""
    rows = (
        OutputImage.objects.filter(generation_id__in=ids)
        .order_by()
        .values("generation_id")
        .annotate(
            n=Count("id"),
            thumbs=Count("id", filter=~Q(thumbnail="")),
            size=Sum("bytes"),
            thumb_size=Sum("thumbnail_bytes"),
        )
    )
    return {
        r["generation_id"]: (
            r["n"],
            r["n"] + r["thumbs"],
            (r["size"] or 0) + (r["thumb_size"] or 0),
        )
        for r in rows
    }


def _drop_photos(names: set[str]) -> None:
    """After commit: the expired generations' photos, unless a generation still uses one."""
    used = set(
        Generation.objects.filter(input_image__in=names).values_list("input_image", flat=True)
    )
    storage.delete_files(sorted(names - used))


def _batches(due, cutoff, batch: int):
    """The due rows as lists of (pk, photo), each row once per run even if another run holds
    it: by (finished_at, pk) along the retention index (`gen_retention_due`, which holds no
    expired row), then the few final rows with no finished_at, by pk."""
    after = None
    while True:
        qs = due.filter(finished_at__lt=cutoff)
        if after is not None:
            qs = qs.filter(Q(finished_at__gt=after[0]) | Q(finished_at=after[0], pk__gt=after[1]))
        rows = list(
            qs.order_by("finished_at", "pk").values_list("pk", "input_image", "finished_at")[:batch]
        )
        if not rows:
            break
        after = rows[-1][2], rows[-1][0]
        yield [(pk, photo) for pk, photo, _ in rows]
    last = 0
    while True:
        qs = due.filter(finished_at__isnull=True, pk__gt=last)
        rows = list(qs.order_by("pk").values_list("pk", "input_image")[:batch])
        if not rows:
            return
        last = rows[-1][0]
        yield rows


def _expire_model(report: ModelReport, now, *, dry_run: bool, batch: int) -> None:
    cutoff = now - timedelta(days=report.days)
    due = Generation.objects.filter(model=report.model).expirable(cutoff)
    for rows in _batches(due, cutoff, batch):
        stats = _stats([pk for pk, _ in rows])
        if dry_run:
            done = rows
        else:
            expired = Generation.expire_images([pk for pk, _ in rows], now)
            done = [(gen.pk, gen.input_image.name) for gen in expired]
            photos = {name for _, name in done if name}
            if photos:  # the batch has committed: on_commit runs this at once
                transaction.on_commit(lambda names=photos: _drop_photos(names))
        for pk, photo in done:
            images, objects, size = stats.get(pk, (0, 0, 0))
            report.generations += 1
            report.images += images
            report.photos += bool(photo)
            report.objects += objects + bool(photo)
            report.bytes += size


def run(*, dry_run: bool = False, now=None, batch: int = BATCH) -> list[ModelReport]:
    """Expire (or with `dry_run`, count) what is due now, per model with a retention."""
    now = now or timezone.now()
    reports = []
    for model, days, source in policies():
        report = ModelReport(model=model, days=days, source=source)
        _expire_model(report, now, dry_run=dry_run, batch=batch)
        reports.append(report)
    return reports


COUNTS = ("generations", "images", "photos", "objects", "bytes")


def describe(reports: list[ModelReport], *, dry_run: bool, quiet: bool = False) -> list[str]:
    """Lines a person reads: one per model (with `quiet`, only those with something), then
    the total."""
    verb = "would go" if dry_run else "removed"
    lines = []
    for r in reports:
        if quiet and not r.generations:
            continue
        where = "its own" if r.source == "model" else "global policy"
        lines.append(
            f"{r.model.slug} (kept {r.days} days, {where}): {r.generations} generation(s), "
            f"{r.images} image(s), {r.photos} photo(s), {r.objects} object(s), "
            f"{r.bytes} bytes {verb}"
        )
    if not reports:
        lines.append("No retention set: every image is kept (admin → Retention policy).")
    total = {name: sum(getattr(r, name) for r in reports) for name in COUNTS}
    lines.append(
        f"Total: {total['generations']} generation(s), {total['images']} image(s), "
        f"{total['photos']} photo(s), {total['objects']} object(s), {total['bytes']} bytes "
        f"{verb}."
    )
    return lines


@shared_task(ignore_result=True)
def expire_old_images() -> None:
    """Celery beat, every EASEL_RETENTION_INTERVAL seconds: what `manage.py retention` does."""
    for line in describe(run(), dry_run=False, quiet=True):
        logger.info("Retention: %s", line)
