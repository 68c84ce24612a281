"""What users submit (Generation) and what comes back (OutputImage).

Every status change of a generation is one public method below (claim, renew_lease, requeue,
complete, complete_with_images, fail, cancel) and so is the star (set_favorite): nothing
outside this module writes a generation's status.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from generator import counters, instruments, notify
from generator.models.catalogue import AIModel
from generator.models.generation_queries import ACTIVE, FINAL, GenerationQuerySet, Status
from generator.models.images import OutputImage
from generator.models.usage import UsageEntry


def new_generation_id() -> str:
    # Short, URL-safe and unguessable; the integer pk never appears in a URL.
    return secrets.token_urlsafe(9)


class Generation(models.Model):
    """One submission: a prompt and options sent to one model, and its outcome."""

    Status = Status
    ACTIVE = ACTIVE
    FINAL = FINAL

    public_id = models.CharField(max_length=16, unique=True, default=new_generation_id)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    model = models.ForeignKey(
        "generator.AIModel", on_delete=models.PROTECT, related_name="generations"
    )
    provider = models.CharField(max_length=32, help_text="The model's provider when submitted.")
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    num_images = models.PositiveSmallIntegerField(default=1)
    input_image = models.FileField(max_length=300, blank=True, upload_to="inputs/")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        help_text="The generation this one re-runs or retries.",
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True, help_text="Why it failed, in words a person can read.")
    progress = models.FloatField(null=True, blank=True, help_text="0–1, where reported.")
    provider_job_id = models.CharField(max_length=200, blank=True, db_index=True)
    provider_state = models.JSONField(default=dict, blank=True)
    tag_sent = models.CharField(max_length=254, blank=True, help_text="User tag sent.")
    priority = models.PositiveSmallIntegerField(default=5)
    attempts = models.PositiveIntegerField(default=0)
    dispatches = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=64, blank=True)
    favorite = models.BooleanField(default=False)
    via_api = models.BooleanField(
        "made through the API", default=False, help_text="Submitted with an API key."
    )

    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the request to the provider was started."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    images_expired_at = models.DateTimeField(
        null=True, blank=True, help_text="When retention removed its images (the rest stays)."
    )

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="gen_user_created"),
            models.Index(
                fields=["user", "status", "-created_at", "-id"], name="gen_user_status_created"
            ),
            models.Index(
                fields=["user", "model", "status", "-created_at", "-id"],
                name="gen_user_model_status_created",
            ),
            models.Index(fields=["status", "lease_until"], name="gen_status_lease"),
            # The gallery's counts of what finished today (gallery.views.user_status_counts).
            models.Index(fields=["user", "finished_at"], name="gen_user_finished"),
            # The fair queue's "does this user have anything waiting?" after every generation
            # (tasks._released): a tiny partial index instead of a walk over their queued rows
            # (+1.4 ms per generation for a user with thousands queued, bench/RESULTS.md).
            models.Index(
                fields=["user", "priority", "created_at"],
                condition=Q(status="queued", dispatched_at__isnull=True),
                name="gen_user_waiting",
            ),
            # Retention's hourly look for what is due, per model (GenerationQuerySet.expirable).
            models.Index(
                fields=["model", "finished_at"],
                condition=Q(images_expired_at__isnull=True),
                name="gen_retention_due",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="gen_unique_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.status})"

    # --- derived -----------------------------------------------------------------------

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def wait_time(self) -> timedelta | None:
        if self.started_at:
            return self.started_at - self.created_at
        return None

    # --- status changes ------------------------------------------------------------------
    # One public method per change. Each is a conditional UPDATE (`… WHERE status IN (…)`), so
    # two workers, or a worker and a webhook, never move one row twice or out of a final state;
    # each returns whether it was the one that moved the row, and bumps the user's change
    # counter (generator.counters) when the status changed.

    def _update_if(self, from_statuses, **changes) -> bool:
        """The conditional UPDATE behind every change; what it wrote is set on self too."""
        changes.setdefault("updated_at", timezone.now())
        updated = Generation.objects.filter(pk=self.pk, status__in=list(from_statuses)).update(
            **changes
        )
        if updated:
            for field, value in changes.items():
                setattr(self, field, value)
            notify.changed(self.pk, self.user_id, self.status)  # its waiters (generator/waiting.py)
        return bool(updated)

    def _transition(self, from_statuses, **changes) -> bool:
        done = self._update_if(from_statuses, **changes)
        if done and "status" in changes:
            counters.bump_user(self.user_id)  # derived counts (gallery) are recomputed
        return done

    @classmethod
    def claim(cls, pk: int, lease_seconds: int) -> Generation | None:
        """queued → running, for exactly one worker. None if someone else has it.

        The claimer sends the request to the provider right away, so the same UPDATE records
        `submitted_at`: a redelivered task then never sends it a second time.
        """
        db = router.db_for_write(cls)
        ops = connections[db].ops
        now = timezone.now()
        when = ops.adapt_datetimefield_value(now)
        lease = ops.adapt_datetimefield_value(now + timedelta(seconds=lease_seconds))
        gen = cls._worker_row(
            db,
            "UPDATE {table} SET status = %s, started_at = %s, submitted_at = %s, "
            "lease_until = %s, attempts = attempts + 1, updated_at = %s "
            "WHERE {table}.id = %s AND {table}.status = %s RETURNING {columns}",
            [cls.Status.RUNNING, when, when, lease, when, pk, cls.Status.QUEUED],
        )
        if gen is not None:
            counters.bump_user(gen.user_id)
            notify.changed(gen.pk, gen.user_id, gen.status)
            instruments.generation_claimed(gen)
        return gen

    @classmethod
    def for_worker(cls, pk: int) -> Generation | None:
        """The row as claim() returns it, for a task that checks on a running generation."""
        db = router.db_for_read(cls)
        return cls._worker_row(db, "SELECT {columns} FROM {table} WHERE {table}.id = %s", [pk])

    # Hand-written SQL, the one place in Easel (bench/RESULTS.md, "make bench"): Django 5.2 has
    # no UPDATE … RETURNING, and the claim is on every generation's path. One statement claims
    # the row and reads what the worker needs with it — the model's updated_at (the key of a
    # worker's cache of models) and the user's public id (the provider's user tag) — instead
    # of an UPDATE and two SELECTs (pipeline 0.09× → 0.24× a trivial Celery task, with the
    # other changes of that run). raw() applies each field's own conversions.
    @classmethod
    def _worker_row(cls, db: str, statement: str, params: list) -> Generation | None:
        """The one row of `statement` as a Generation, with `model_version` and `user` (with
        `public_id` only) set."""
        user_model = get_user_model()
        qn = connections[db].ops.quote_name
        table = qn(cls._meta.db_table)
        columns = (
            f"*, (SELECT updated_at FROM {qn(AIModel._meta.db_table)} m "
            f"WHERE m.id = {table}.model_id) AS model_version, "
            f"(SELECT public_id FROM {qn(user_model._meta.db_table)} u "
            f"WHERE u.id = {table}.user_id) AS user_public_id"
        )
        sql = statement.format(table=table, columns=columns)
        gen = next(iter(cls.objects.raw(sql, params, using=db)), None)
        if gen is None:
            return None
        gen.user = user_model.from_db(db, ["id", "public_id"], [gen.user_id, gen.user_public_id])
        return gen

    def renew_lease(self, lease_seconds: int, **changes) -> bool:
        """Still running: the worker (or the reaper) keeps the row for `lease_seconds` more,
        recording what the provider said (job id, state, progress)."""
        return self._transition(
            [self.Status.RUNNING],
            lease_until=timezone.now() + timedelta(seconds=lease_seconds),
            **changes,
        )

    def requeue(self, error: str | None = None) -> bool:
        """running → queued, only for a request that provably never reached the provider
        (refused, or never sent): it may be sent again. `error` says why, for the admin."""
        changes = {"status": self.Status.QUEUED, "submitted_at": None, "lease_until": None}
        if error is not None:
            changes["error"] = error
        return self._transition([self.Status.RUNNING], **changes)

    def record_dispatch(self) -> None:
        """The task was sent to the queue (again)."""
        self.dispatches += 1
        self.dispatched_at = timezone.now()
        Generation.objects.filter(pk=self.pk).update(
            dispatched_at=self.dispatched_at, dispatches=F("dispatches") + 1
        )

    @staticmethod
    def lock_owner(user_id: int) -> None:
        """Serialise one user's submissions, limit checks and fair-queue releases: their row is
        locked until the transaction ends."""
        get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk").first()

    @classmethod
    def mark_dispatched(cls, rows: list[Generation]) -> list[Generation]:
        """Waiting rows about to be sent to the task queue: stamped as dispatched, each only
        once (a row another release took already is left out). Returns the rows stamped."""
        now = timezone.now()
        taken = set(
            cls.objects.filter(pk__in=[g.pk for g in rows], dispatched_at__isnull=True)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        cls.objects.filter(pk__in=taken).update(dispatched_at=now, dispatches=F("dispatches") + 1)
        stamped = [g for g in rows if g.pk in taken]
        for gen in stamped:
            gen.dispatched_at, gen.dispatches = now, gen.dispatches + 1
        return stamped

    def undo_dispatch(self) -> None:
        """A send stamped in advance (see actions.submit) failed: the reaper sends it later."""
        Generation.objects.filter(pk=self.pk, dispatches=self.dispatches).update(
            dispatched_at=None, dispatches=self.dispatches - 1
        )
        self.dispatched_at, self.dispatches = None, self.dispatches - 1
        counters.mark_waiting(self.user_id)  # waiting again: the next end or the reaper sends it

    @classmethod
    def completion(cls) -> dict[str, Any]:
        now = timezone.now()
        return {
            "status": cls.Status.COMPLETED,
            "progress": 1.0,
            "error": "",
            "finished_at": now,
            "lease_until": None,
            "updated_at": now,
        }

    def complete(self) -> bool:
        """queued/running → completed, for images already stored (meteron_sync)."""
        done = self._transition(self.ACTIVE, **self.completion())
        if done:
            instruments.generation_finished(self, self.Status.COMPLETED, None)
        return done

    def complete_with_images(self, images: list[OutputImage]) -> bool:
        """running → completed and its image rows, in one transaction, only if it is still
        running: canceled, finished or deleted meanwhile stores no row (the caller removes
        the files). An IntegrityError (rows stored by another path) propagates."""
        with transaction.atomic(using=router.db_for_write(Generation, instance=self)):
            done = self._update_if([self.Status.RUNNING], **self.completion())
            if done:
                OutputImage.objects.bulk_create(images)
        if done:
            counters.bump_user(self.user_id)
            instruments.generation_finished(self, self.Status.COMPLETED, None)
        return done

    # Who did the work a failure cost: the refund rule below reads it with the row.
    PROVIDER_SIDE = "provider"  # the provider refused or failed on its side: nothing billable
    EASEL_SIDE = "easel"  # Easel failed after the provider's work (storing, a timeout, …)
    UNKNOWN = "unknown"  # the request may have reached the provider: count it as if it had

    @property
    def reached_provider(self) -> bool:
        """Whether the provider may have been sent the request (the claim records
        `submitted_at` as it sends; a requeue clears it) or holds a job for it."""
        return self.submitted_at is not None or bool(self.provider_job_id)

    def _settle(self, reason: str, *, refund: bool) -> None:
        """The ledger's side of an end other than completed: give the images back only when
        the provider did no billable work; otherwise keep the charge and say why on it."""
        if refund:
            UsageEntry.objects.refund(self, reason)
        else:
            UsageEntry.objects.keep(self, reason)

    def fail(self, reason: str, side: str = PROVIDER_SIDE) -> bool:
        """→ failed with a reason a person can read. Refunded when the request never reached
        the provider or the provider failed it on its side (`side`, the default); a failure
        of Easel's own after the provider worked, or an unknown outcome, keeps the charge:
        a limit bounds what reaches the provider."""
        return self._end(
            self.Status.FAILED, reason, refund=side == self.PROVIDER_SIDE, reason_class=side
        )

    def cancel(self, reason: str = "Canceled.", *, by_provider: bool = False) -> bool:
        """→ canceled. Refunded if the request never reached the provider, or the provider
        itself canceled the job (`by_provider`); a job the provider already accepted keeps
        its charge (stopping it there is generator.actions.cancel's part)."""
        return self._end(self.Status.CANCELED, reason, refund=by_provider)

    def _end(self, status: str, reason: str, *, refund: bool, reason_class: str = "") -> bool:
        """queued/running → a final status other than completed, then the ledger: refunded
        when `refund` or the request never reached the provider, else the charge is kept.
        `reason_class` (a failure's side) labels the failures metric; "not_sent" when the
        request never reached the provider."""
        done = self._transition(
            self.ACTIVE,
            status=status,
            error=reason[:2000],
            finished_at=timezone.now(),
            lease_until=None,
        )
        if done:
            self._settle(reason, refund=refund or not self.reached_provider)
            if reason_class and not self.reached_provider:
                reason_class = "not_sent"
            instruments.generation_finished(self, status, reason_class or None)
        return done

    def set_favorite(self, favorite: bool) -> None:
        """Star or unstar. Not a status change: the user's pages and the stars counter move
        (the card, and the starred filter's settled counts), no other filter's counts."""
        now = timezone.now()
        Generation.objects.filter(pk=self.pk).update(favorite=favorite, updated_at=now)
        self.favorite, self.updated_at = favorite, now
        counters.bump_stars(self.user_id)

    @classmethod
    def expire_images(cls, pks: list[int], now) -> list[Generation]:
        """Retention (generator/retention.py), in one transaction: these finished generations
        lose their image rows (the post_delete receiver removes the objects after commit) and
        photo (the caller removes it) and get `images_expired_at`. Rows another run holds are
        skipped, expired ones left: none expires twice. Returns them, `input_image` named."""
        db = router.db_for_write(cls)
        with transaction.atomic(using=db):
            rows = list(
                cls.objects.select_for_update(skip_locked=True)
                .filter(pk__in=pks, status__in=cls.FINAL, images_expired_at__isnull=True)
                .only("id", "user_id", "input_image")
            )
            ids = [gen.pk for gen in rows]
            OutputImage.objects.filter(generation_id__in=ids).delete()
            changes = {"images_expired_at": now, "input_image": "", "updated_at": now}
            cls.objects.filter(pk__in=ids).update(**changes)
            for user_id in {gen.user_id for gen in rows}:  # their pages show it at once
                transaction.on_commit(lambda u=user_id: counters.bump_user(u), using=db)
        return rows
