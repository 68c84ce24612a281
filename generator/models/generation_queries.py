"""Generation queries: the filters the gallery, the fair queue and the staff pages build on,
and the statuses they name (Generation.Status is this Status)."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


ACTIVE = (Status.QUEUED, Status.RUNNING)
FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELED)


class GenerationQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def with_status(self, status: str | None):
        return self.filter(status=status) if status else self

    def for_model(self, model):
        return self.filter(model=model) if model else self

    def active(self):
        return self.filter(status__in=ACTIVE)

    # The fair queue (generator.tasks.release): a user's generations "in flight" were sent to
    # the task queue or are running; "waiting" ones are queued in Easel only, until one of
    # the user's in-flight generations ends.
    def in_flight(self, user_id: int):
        return self.filter(user_id=user_id, status__in=ACTIVE).exclude(
            status=Status.QUEUED, dispatched_at__isnull=True
        )

    def waiting(self, user_id: int | None = None):
        qs = self.filter(status=Status.QUEUED, dispatched_at__isnull=True)
        return qs.filter(user_id=user_id) if user_id is not None else qs

    def expirable(self, cutoff):
        """Retention's selection: finished before `cutoff` (by `finished_at`; `created_at` for
        a final row that has none), images not expired yet, and something stored: completed
        (its images) or an uploaded photo. Queued and running rows never match. No subquery
        on the images: the hourly look stays an index range (gen_retention_due)."""
        return self.filter(
            Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff),
            Q(status=Status.COMPLETED) | ~Q(input_image=""),
            status__in=FINAL,
            images_expired_at__isnull=True,
        )

    def newest_first(self):
        return self.order_by("-created_at", "-id")

    def after_cursor(self, created_at, pk: int):
        """Keyset pagination: rows strictly after (created_at, pk) in newest-first order."""
        # The redundant `created_at <=` bound lets PostgreSQL start the index scan at the
        # cursor instead of filtering every newer row (43 ms -> 0.2 ms, 90,000 rows in).
        return self.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk)
        )

    def oldest_first(self):
        return self.order_by("created_at", "id")

    def before_cursor(self, created_at, pk: int):
        """Keyset pagination: rows strictly after (created_at, pk) in oldest-first order."""
        return self.filter(created_at__gte=created_at).filter(
            Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk)
        )

    def search(self, text: str | None):
        return self.filter(prompt__icontains=text) if text else self

    def created_between(self, start=None, end=None):
        """`start`/`end` are aware datetimes; `end` is exclusive."""
        qs = self
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return qs

    def starred(self, only: bool = True):
        return self.filter(favorite=True) if only else self

    def matching(self, criteria: dict):
        """The gallery's filter (gallery.forms.GalleryFilterForm.criteria(), JSON-safe so an
        export can keep it): model id, prompt search, created from/to (ISO datetimes, the end
        exclusive), starred, status. The gallery pages and the ZIP export both filter here."""
        start, end = criteria.get("start"), criteria.get("end")
        return (
            self.for_model(criteria.get("model"))
            .search(criteria.get("q"))
            .created_between(
                datetime.fromisoformat(start) if start else None,
                datetime.fromisoformat(end) if end else None,
            )
            .starred(bool(criteria.get("starred")))
            .with_status(criteria.get("status") or None)
        )

    def status_counts(self) -> dict[str, int]:
        counts = {status: 0 for status in Status.values}
        for row in self.order_by().values("status").annotate(n=models.Count("id")):
            counts[row["status"]] = row["n"]
        return counts

    def counts_by_provider_status(self) -> dict[tuple[str, str], int]:
        """{(provider, status): n} — the staff dashboard's table and /metrics' easel_generations
        gauge both read this, so the two always agree."""
        rows = self.order_by().values_list("provider", "status").annotate(n=models.Count("id"))
        return {(provider, status): n for provider, status, n in rows}
