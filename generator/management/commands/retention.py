"""Remove images older than their model's retention (issue #18).

    manage.py retention [--dry-run]

The same code path as the Celery beat task (generator.retention.run). Prints, per model with a
retention, how many generations, images, photos, storage objects and bytes went — or with
--dry-run would go; a dry run deletes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from generator import retention


class Command(BaseCommand):
    help = "Delete stored images older than their model's retention; --dry-run reports only."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would go; delete nothing."
        )

    def handle(self, *args, dry_run: bool, **options):
        lines = retention.describe(retention.run(dry_run=dry_run), dry_run=dry_run)
        if dry_run:
            self.stdout.write("Dry run: nothing is deleted.")
        for line in lines[:-1]:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(lines[-1]))
