"""Easel's own copies of images in storage (local disk or an S3-compatible bucket).

Every way a row disappears — the user's Delete button, the admin's bulk action, a cascade from a
deleted user or generation — runs the post_delete receiver in generator/signals.py, which calls
delete_files once the transaction commits (a rolled-back delete keeps them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from generator.imaging import make_thumbnail
from generator.models import OutputImage

logger = logging.getLogger(__name__)

# Every object Easel writes lives under one of these prefixes: output images and thumbnails
# (generator.models.output_upload_to) and uploaded input photos (Generation.input_image).
PREFIX = "generations/"
INPUTS_PREFIX = "inputs/"


def delete_files(names: list[str]) -> int:
    """Remove these objects from storage; a missing one is not an error. Returns how many went."""
    removed = 0
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
            removed += 1
        except Exception:
            # Never lose the row's deletion over a storage hiccup; the maintenance command
            # finds whatever is left behind as an orphan.
            logger.warning("Could not delete %s from storage", name, exc_info=True)
    return removed


@dataclass
class StoredObject:
    name: str
    modified: datetime | None


def iter_stored(prefix: str = PREFIX) -> Iterator[StoredObject]:
    """Every object under `prefix`, with its modification time where storage knows it."""
    bucket = getattr(default_storage, "bucket", None)
    if bucket is not None:  # S3Storage: one paginated listing instead of a walk per folder
        location = getattr(default_storage, "location", "") or ""
        strip = f"{location.rstrip('/')}/" if location else ""
        for summary in bucket.objects.filter(Prefix=f"{strip}{prefix}"):
            yield StoredObject(summary.key[len(strip) :], summary.last_modified)
        return
    yield from _walk(prefix.rstrip("/"))


def _walk(folder: str) -> Iterator[StoredObject]:
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(files):
        path = f"{folder}/{name}"
        try:
            modified = default_storage.get_modified_time(path)
        except (FileNotFoundError, NotImplementedError):
            modified = None
        yield StoredObject(path, modified)
    for sub in sorted(folders):
        yield from _walk(f"{folder}/{sub}")


def rebuild_thumbnail(image: OutputImage) -> int:
    """Make the WebP thumbnail again from the stored original; returns its size in bytes."""
    with default_storage.open(image.file.name, "rb") as handle:
        data = handle.read()
    thumb = make_thumbnail(data)
    old = image.thumbnail.name
    image.thumbnail.save(f"{image.index}_thumb.webp", ContentFile(thumb), save=False)
    image.thumbnail_bytes = len(thumb)
    image.save(update_fields=["thumbnail", "thumbnail_bytes"])
    if old and old != image.thumbnail.name:
        delete_files([old])
    return len(thumb)
