"""A ZIP export of a filtered gallery view (issue #18): the row that tracks one archive.

Every status change is one method below, a conditional UPDATE like Generation's, so a
redelivered task never builds the same archive twice and a final state is never left. A user
has at most one export queued or running (a partial unique constraint: two clicks, two tabs or
two web nodes still make one). The archive itself is built by generator.export_archive.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from generator.models.generation import Generation
from generator.models.images import OutputImage

# How long a finished archive can be downloaded.
EXPORT_LIFETIME = timedelta(days=1)
# A running export that has recorded no progress for this long lost its worker (the periodic
# cleanup fails it, so its owner can start another).
STALE_AFTER = timedelta(minutes=15)


def new_export_id() -> str:
    return secrets.token_urlsafe(9)


class ExportRefused(Exception):
    """An export cannot be started; the message says why, in words for the user."""


class ExportQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def active(self):
        return self.filter(status__in=Export.ACTIVE)

    def expired_with_file(self, now=None):
        """Completed exports past their expiry whose archive is still in storage."""
        now = now or timezone.now()
        return self.filter(status=Export.Status.COMPLETED, expires_at__lte=now).exclude(
            file_name=""
        )

    def stale(self, now=None):
        """Queued or running exports that stopped moving (their worker or message was lost)."""
        return self.active().filter(updated_at__lt=(now or timezone.now()) - STALE_AFTER)


class Export(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    public_id = models.CharField(max_length=16, unique=True, default=new_export_id)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports"
    )
    filters = models.JSONField(
        default=dict, help_text="The gallery filter it was made from (GalleryFilterForm.criteria)."
    )
    query = models.CharField(
        max_length=1000, blank=True, help_text="The gallery URL's query, to link back."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True, help_text="Why it failed, in words a person can read.")
    total = models.PositiveIntegerField(default=0, help_text="Images to write.")
    done = models.PositiveIntegerField(default=0, help_text="Images written so far.")
    generations = models.PositiveIntegerField(default=0, help_text="Generations in the archive.")
    file_name = models.CharField(max_length=300, blank=True, help_text="Object key in storage.")
    bytes = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["queued", "running"]),
                name="export_one_active_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.status})"

    # --- derived -----------------------------------------------------------------------

    @property
    def storage_name(self) -> str:
        """Where the archive goes: under the user's own prefix, which erase_user deletes."""
        return f"exports/{self.user.public_id}/{self.public_id}.zip"

    @property
    def download_name(self) -> str:
        return f"easel-export-{self.created_at:%Y%m%d-%H%M}-{self.public_id}.zip"

    @property
    def is_final(self) -> bool:
        return self.status not in self.ACTIVE

    def is_expired(self, now=None) -> bool:
        return bool(self.expires_at and self.expires_at <= (now or timezone.now()))

    @property
    def downloadable(self) -> bool:
        return (
            self.status == self.Status.COMPLETED and bool(self.file_name) and not self.is_expired()
        )

    @staticmethod
    def selection(user_id: int, filters: dict):
        """What the filtered gallery view lists, all pages, in its order."""
        qs = Generation.objects.for_user(user_id).matching(filters)
        return qs.oldest_first() if filters.get("sort") == "oldest" else qs.newest_first()

    @staticmethod
    def count_images(user_id: int, filters: dict) -> int:
        ids = Export.selection(user_id, filters).order_by().values("pk")
        return OutputImage.objects.filter(generation__in=ids).exclude(file="").count()

    def generations_queryset(self):
        return self.selection(self.user_id, self.filters)

    # --- status changes ------------------------------------------------------------------

    @classmethod
    def start(cls, user, filters: dict, query: str, total: int) -> Export:
        """A new queued export, or ExportRefused if the user already has one going."""
        try:
            with transaction.atomic():
                return cls.objects.create(user=user, filters=filters, query=query, total=total)
        except IntegrityError:
            raise ExportRefused(
                "You already have an export in progress; wait for it to finish, then start another."
            ) from None

    def _update_if(self, from_statuses, **changes) -> bool:
        changes.setdefault("updated_at", timezone.now())
        updated = Export.objects.filter(pk=self.pk, status__in=list(from_statuses)).update(
            **changes
        )
        if updated:
            for field, value in changes.items():
                setattr(self, field, value)
        return bool(updated)

    def claim(self) -> bool:
        """queued → running, for exactly one worker."""
        return self._update_if(
            [self.Status.QUEUED], status=self.Status.RUNNING, started_at=timezone.now()
        )

    def record_progress(self, done: int, total: int | None = None) -> bool:
        changes = {"done": done}
        if total is not None:
            changes["total"] = total
        return self._update_if([self.Status.RUNNING], **changes)

    def complete(self, file_name: str, size: int, done: int, generations: int) -> bool:
        now = timezone.now()
        return self._update_if(
            [self.Status.RUNNING],
            status=self.Status.COMPLETED,
            file_name=file_name,
            bytes=size,
            done=done,
            total=done,
            generations=generations,
            finished_at=now,
            expires_at=now + EXPORT_LIFETIME,
        )

    def fail(self, error: str) -> bool:
        return self._update_if(
            self.ACTIVE, status=self.Status.FAILED, error=error, finished_at=timezone.now()
        )

    def discard_file(self) -> bool:
        """The archive was deleted from storage (expired): the row stays, with no file."""
        return bool(
            Export.objects.filter(pk=self.pk, file_name=self.file_name).update(file_name="")
        )
