"""Keep storage and the database in step.

    manage.py storage_maintenance [--dry-run] [--min-age MINUTES] [--skip-orphans] [--skip-thumbnails]

- Orphans: objects under generations/ that no OutputImage row points at, and input photos under
  inputs/ that no Generation points at (left by a crash between writing a file and saving its
  row, a lost double-click race, or a storage error during a delete) are removed, and so are
  share links' copies under shared/ whose link no longer opens (expired, revoked, or gone).
  Objects younger than --min-age (default 60 minutes) are kept: a request may be about to save
  the row.
- Thumbnails: an image whose thumbnail is missing (no name, or no object behind the name) gets a
  new WebP thumbnail made from its original.

Prints progress every 500 objects and a summary; --dry-run only reports.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from generator.models import Generation, OutputImage, ShareLink
from generator.sharing import SHARED_PREFIX
from generator.storage import INPUTS_PREFIX, PREFIX, delete_files, iter_stored, rebuild_thumbnail

PROGRESS_EVERY = 500


class Command(BaseCommand):
    help = "Remove orphaned image objects from storage and re-create missing thumbnails."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument(
            "--min-age",
            type=float,
            default=60,
            help="Only remove orphans older than this many minutes (default 60).",
        )
        parser.add_argument("--skip-orphans", action="store_true")
        parser.add_argument("--skip-thumbnails", action="store_true")

    def handle(
        self,
        *args,
        dry_run: bool,
        min_age: float,
        skip_orphans: bool,
        skip_thumbnails: bool,
        **options,
    ):
        summary = []
        if not skip_orphans:
            found, removed, young = self.orphans(dry_run, timedelta(minutes=min_age))
            summary.append(
                f"{found} orphaned object(s) found, would be removed"
                if dry_run
                else f"{removed} orphaned object(s) removed"
            )
            if young:
                summary.append(
                    f"{young} recent unreferenced object(s) kept (younger than --min-age)"
                )
        if not skip_thumbnails:
            missing, rebuilt, failed = self.thumbnails(dry_run)
            summary.append(
                f"{missing} missing thumbnail(s) found, would be re-created"
                if dry_run
                else f"{rebuilt} thumbnail(s) re-created"
            )
            if failed:
                summary.append(f"{failed} thumbnail(s) could not be re-created (see above)")
        prefix = "Dry run: " if dry_run else ""
        self.stdout.write(self.style.SUCCESS(prefix + "; ".join(summary) + "."))

    def orphans(self, dry_run: bool, min_age: timedelta) -> tuple[int, int, int]:
        referenced = set()
        for name, thumb in OutputImage.objects.values_list("file", "thumbnail").iterator():
            referenced.update(n for n in (name, thumb) if n)
        photos = Generation.objects.exclude(input_image="").values_list("input_image", flat=True)
        referenced.update(photos.iterator())
        # An expired link's copies are no longer needed: only a live link's count as referenced.
        for copies in ShareLink.objects.live().values_list("stored_names", flat=True).iterator():
            referenced.update(copies or [])
        cutoff = timezone.now() - min_age
        scanned = found = young = 0
        doomed: list[str] = []
        prefixes = (PREFIX, INPUTS_PREFIX, SHARED_PREFIX)
        for obj in itertools.chain.from_iterable(iter_stored(p) for p in prefixes):
            scanned += 1
            if scanned % PROGRESS_EVERY == 0:
                self.stdout.write(f"  scanned {scanned} objects, {found} orphaned so far…")
            if obj.name in referenced:
                continue
            if obj.modified is not None and obj.modified > cutoff:
                young += 1
                continue
            found += 1
            self.stdout.write(f"  orphan: {obj.name}")
            doomed.append(obj.name)
        self.stdout.write(
            f"Scanned {scanned} stored object(s) against {len(referenced)} referenced."
        )
        removed = 0 if dry_run else delete_files(doomed)
        return found, removed, young

    def thumbnails(self, dry_run: bool) -> tuple[int, int, int]:
        missing = rebuilt = failed = checked = 0
        for image in OutputImage.objects.select_related("generation__user").iterator(
            chunk_size=200
        ):
            checked += 1
            if checked % PROGRESS_EVERY == 0:
                self.stdout.write(
                    f"  checked {checked} images, {missing} missing thumbnails so far…"
                )
            if image.thumbnail.name and default_storage.exists(image.thumbnail.name):
                continue
            missing += 1
            self.stdout.write(f"  missing thumbnail: {image}")
            if dry_run:
                continue
            try:
                rebuild_thumbnail(image)
                rebuilt += 1
            except Exception as exc:  # a missing or damaged original: report it, carry on
                failed += 1
                self.stderr.write(f"  could not re-create the thumbnail of {image}: {exc}")
        self.stdout.write(f"Checked {checked} image(s).")
        return missing, rebuilt, failed
