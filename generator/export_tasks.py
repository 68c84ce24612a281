"""ZIP exports (issue #18): the one way to start one, the Celery task that builds it, and the
periodic cleanup. The worker imports this module through CELERY_IMPORTS (config/settings.py);
autodiscovery only finds modules named tasks.py.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

from generator import export_archive, storage
from generator.models import Export, ExportRefused

logger = logging.getLogger(__name__)


def start_export(user, criteria: dict, query: str = "") -> Export:
    """Queue an export of what the gallery filter `criteria` lists (all pages); ExportRefused
    with a message for the user when it is empty, too big, or one is already going."""
    total = Export.count_images(user.pk, criteria)
    limit = settings.EASEL_EXPORT_MAX_IMAGES
    if total == 0:
        raise ExportRefused("These filters match no images, so there is nothing to export.")
    if total > limit:
        raise ExportRefused(
            f"This view holds {total:,} images; one export holds at most {limit:,}. "
            "Narrow the filters (a model, a status or dates) and export it in parts."
        )
    export = Export.start(user, criteria, query[:1000], total)
    transaction.on_commit(lambda: _dispatch(export))
    return export


def _dispatch(export: Export) -> None:
    try:
        build_export.delay(export.pk)
    except Exception:  # the broker is down: say so now rather than leave it queued
        logger.warning("Could not queue export %s", export.public_id, exc_info=True)
        export.fail("The export could not be queued (the task queue is unreachable); try again.")


@shared_task(acks_late=True, ignore_result=True)
def build_export(pk: int) -> None:
    export = Export.objects.select_related("user").filter(pk=pk).first()
    if export is None or not export.claim():
        return  # gone, or another delivery of this message has it
    try:
        name, size, done, listed = export_archive.build(export)
    except export_archive.ExportStopped:
        logger.info("Export %s stopped while it was written", export.public_id)
        return
    except Exception as exc:
        logger.exception("Export %s failed", export.public_id)
        export.fail(f"The archive could not be written ({type(exc).__name__}); start it again.")
        return
    if not export.complete(name, size, done, listed):
        storage.delete_files([name])  # failed meanwhile (stale): keep nothing nobody can fetch


@shared_task(ignore_result=True)
def clean_exports() -> dict[str, int]:
    """Celery beat: delete archives past their day (the row stays, saying expired) and fail
    exports whose worker was lost, so their owner can start another."""
    deleted = 0
    for export in Export.objects.expired_with_file().only("pk", "file_name").iterator():
        if storage.delete_files([export.file_name]) and export.discard_file():
            deleted += 1
    stale = 0
    for export in Export.objects.stale():
        stale += export.fail("The export stopped without finishing; start it again.")
    return {"deleted": deleted, "stale": stale}
