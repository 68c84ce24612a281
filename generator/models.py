"""What users pick (AIModel), what they submit (Generation) and what comes back (OutputImage).

Every status change goes through one Generation method; each is a conditional UPDATE so two
workers (or a worker and a webhook) can never move one row twice or out of a final state.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.db.models import Q
from django.utils import timezone

from generator import counters


def new_generation_id() -> str:
    # Short, URL-safe and unguessable; the integer pk never appears in a URL.
    return secrets.token_urlsafe(9)


class AIModelQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class AIModel(models.Model):
    """A model as users see it, backed by one provider's model id."""

    class TagWith(models.TextChoices):
        PUBLIC_ID = "public_id", "User's public id"
        EMAIL = "email", "User's e-mail"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    provider = models.CharField(max_length=32, help_text="Registry name of the provider.")
    remote_id = models.CharField(
        "provider's model id", max_length=200, blank=True, help_text="Sent to the provider."
    )
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=100, help_text="Order in the model picker.")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Allowed options: {"sizes": ["1024x1024"], "aspect_ratios": ["1:1"], '
            '"max_images": 4, "negative_prompt": true, "seed": true, "input_image": false, '
            '"prompt_max_length": 1000, "defaults": {"size": "1024x1024", "num_images": 1}}'
        ),
    )
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Provider-specific settings (e.g. async mode, version, extra body fields).",
    )
    tag_with = models.CharField(
        max_length=16,
        choices=TagWith.choices,
        default=TagWith.PUBLIC_ID,
        help_text="What is sent to the provider as the user tag.",
    )
    timeout_seconds = models.PositiveIntegerField(
        default=600, help_text="A generation not finished by then fails with 'timed out'."
    )
    # Fair-use defaults for every user of this model (blank = unlimited); per-user overrides
    # live in UserLimit. Enforced by generator.limits before anything is created or sent.
    daily_image_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images per user per day (blank = unlimited)."
    )
    monthly_image_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images per user per calendar month (blank = unlimited)."
    )
    max_running = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Generations a user may have queued or running at once (blank = unlimited).",
    )
    prompt_template = models.CharField(
        max_length=500,
        blank=True,
        help_text="Optional, e.g. 'a {theme} {room}'; each {name} becomes a select box.",
    )
    template_choices = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"theme": ["Modern", "Vintage"], "room": [...]}'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AIModelQuerySet.as_manager()

    class Meta:
        ordering = ("position", "name")
        verbose_name = "AI model"

    def __str__(self) -> str:
        return self.name

    def tag_for(self, user) -> str:
        """What the provider sees as the user: the stable public id unless staff chose the
        e-mail."""
        return user.email if self.tag_with == self.TagWith.EMAIL else user.public_id

    # Options, with the defaults a model gets when staff leave a key out.
    def option(self, key: str, default: Any = None) -> Any:
        return (self.options or {}).get(key, default)

    @property
    def sizes(self) -> list[str]:
        return list(self.option("sizes", []))

    @property
    def aspect_ratios(self) -> list[str]:
        return list(self.option("aspect_ratios", []))

    @property
    def max_images(self) -> int:
        return int(self.option("max_images", 4))

    @property
    def supports_negative_prompt(self) -> bool:
        return bool(self.option("negative_prompt", False))

    @property
    def supports_seed(self) -> bool:
        return bool(self.option("seed", True))

    @property
    def accepts_input_image(self) -> bool:
        return bool(self.option("input_image", False))

    @property
    def prompt_max_length(self) -> int:
        return int(self.option("prompt_max_length", 1000))

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.option("defaults", {}))

    @property
    def is_offline(self) -> bool:
        from generator.providers import get_provider_class

        cls = get_provider_class(self.provider)
        return bool(cls and cls.offline)

    @property
    def provider_label(self) -> str:
        from generator.providers import get_provider_class

        cls = get_provider_class(self.provider)
        return cls.label if cls else self.provider


class GenerationQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def with_status(self, status: str | None):
        return self.filter(status=status) if status else self

    def for_model(self, model: AIModel | None):
        return self.filter(model=model) if model else self

    def active(self):
        return self.filter(status__in=Generation.ACTIVE)

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

    def status_counts(self) -> dict[str, int]:
        counts = {status: 0 for status in Generation.Status.values}
        for row in self.order_by().values("status").annotate(n=models.Count("id")):
            counts[row["status"]] = row["n"]
        return counts


class Generation(models.Model):
    """One submission: a prompt and options sent to one model, and its outcome."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELED)

    public_id = models.CharField(max_length=16, unique=True, default=new_generation_id)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="generations")
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

    # --- status changes: one conditional UPDATE each ----------------------------------

    def _update_if(self, from_statuses, **changes) -> bool:
        """The conditional UPDATE behind every status change, without the change-counter bump
        (for a caller that makes it part of a larger transaction and bumps after it)."""
        changes.setdefault("updated_at", timezone.now())
        connection = connections[router.db_for_write(Generation, instance=self)]
        sql, params = self._update_statement(connection, from_statuses, changes)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            updated = cursor.rowcount
        if updated:
            self._remember(changes)
        return bool(updated)

    def _update_statement(self, connection, from_statuses, changes: dict) -> tuple[str, list]:
        """`UPDATE … SET changes WHERE id = self AND status IN from_statuses`, and its params.

        Plain SQL from the fields' own conversions: the ORM's update() compiled the same
        statement at several times the cost of running it, on every step of every generation.
        """
        qn = connection.ops.quote_name
        fields = [self._meta.get_field(name) for name in changes]
        statuses = list(from_statuses)
        sql = (
            f"UPDATE {qn(self._meta.db_table)} SET "
            + ", ".join(f"{qn(f.column)} = %s" for f in fields)
            + f" WHERE id = %s AND status IN ({', '.join(['%s'] * len(statuses))})"
        )
        params = [f.get_db_prep_save(changes[f.name], connection) for f in fields]
        return sql, [*params, self.pk, *statuses]

    def _remember(self, changes: dict) -> None:
        """What an UPDATE that matched wrote, on this object too."""
        for field, value in changes.items():
            setattr(self, field, value)

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

        One statement (UPDATE … RETURNING: PostgreSQL, SQLite ≥ 3.35), see _worker_row.
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
        return gen

    @classmethod
    def for_worker(cls, pk: int) -> Generation | None:
        """The row as claim() returns it, for a task that checks on a running generation."""
        db = router.db_for_read(cls)
        return cls._worker_row(db, "SELECT {columns} FROM {table} WHERE {table}.id = %s", [pk])

    @classmethod
    def _worker_row(cls, db: str, statement: str, params: list) -> Generation | None:
        """The one row of `statement` as a Generation, with `model_version` (its model's
        updated_at, which a worker's cache of models is keyed on) and `user` with `public_id`
        loaded (other fields deferred): what a task needs, in one statement."""
        from django.contrib.auth import get_user_model

        connection = connections[db]
        qn = connection.ops.quote_name
        user_model = get_user_model()
        table = qn(cls._meta.db_table)
        fields = cls._meta.concrete_fields
        columns = ", ".join(f"{table}.{qn(f.column)}" for f in fields) + (
            f", (SELECT updated_at FROM {qn(AIModel._meta.db_table)} m "
            f"WHERE m.id = {table}.model_id), "
            f"(SELECT public_id FROM {qn(user_model._meta.db_table)} u "
            f"WHERE u.id = {table}.user_id)"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement.format(table=table, columns=columns), params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = []
        for field, value in zip(fields, row, strict=False):
            # What the ORM's compiler applies to each column (JSON parsing, SQLite datetimes…)
            col = field.get_col(cls._meta.db_table)
            for convert in connection.ops.get_db_converters(col) + col.get_db_converters(
                connection
            ):
                value = convert(value, col, connection)
            values.append(value)
        gen = cls.from_db(db, [f.attname for f in fields], values)
        gen.model_version, public_id = row[len(fields) :]
        gen.user = user_model.from_db(db, ["id", "public_id"], [gen.user_id, public_id])
        return gen

    def renew_lease(self, lease_seconds: int, **changes) -> bool:
        return self._transition(
            [self.Status.RUNNING],
            lease_until=timezone.now() + timedelta(seconds=lease_seconds),
            **changes,
        )

    @classmethod
    def completion(cls) -> dict[str, Any]:
        """The fields a completion writes (complete(), outputs.store_and_complete)."""
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
        return self._transition(self.ACTIVE, **self.completion())

    def fail(self, reason: str) -> bool:
        done = self._transition(
            self.ACTIVE,
            status=self.Status.FAILED,
            error=reason[:2000],
            finished_at=timezone.now(),
            lease_until=None,
        )
        if done:
            self._refund(reason)
        return done

    def cancel(self, reason: str = "Canceled.") -> bool:
        done = self._transition(
            self.ACTIVE,
            status=self.Status.CANCELED,
            error=reason,
            finished_at=timezone.now(),
            lease_until=None,
        )
        if done:
            self._refund(reason)
        return done

    def set_favorite(self, favorite: bool) -> None:
        """Star or unstar. Not a status change, so only the history counter moves with it
        (the starred filter's pages, the settled counts and the card)."""
        now = timezone.now()
        Generation.objects.filter(pk=self.pk).update(favorite=favorite, updated_at=now)
        self.favorite, self.updated_at = favorite, now
        counters.bump_history(self.user_id)

    def _refund(self, reason: str) -> None:
        # Only the caller whose UPDATE moved the row gets here, so this runs once per
        # generation; the ledger's unique (generation, kind) makes a repeat a no-op anyway.
        from generator.limits import refund

        refund(self, reason)


def output_upload_to(instance: OutputImage, filename: str) -> str:
    gen = instance.generation
    return f"generations/{gen.user.public_id}/{gen.public_id}/{filename}"


class OutputImage(models.Model):
    """One image in Easel's own storage. The provider's URL is kept only as a record."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    file = models.FileField(max_length=300, upload_to=output_upload_to)
    thumbnail = models.FileField(max_length=300, blank=True, upload_to=output_upload_to)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=64)
    thumbnail_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    provider_url = models.TextField(blank=True, help_text="Where the provider served it (expires).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # By the column, not the relation: "generation" would join generations to order by
        # their own Meta.ordering (created_at), on every images query.
        ordering = ("generation_id", "index")
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="image_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.generation.public_id} #{self.index}"

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
            self.content_type, "bin"
        )

    @property
    def download_name(self) -> str:
        return f"easel-{self.generation.public_id}-{self.index + 1}.{self.extension}"


class UserLimit(models.Model):
    """A per-user override of a model's limits. model = None applies to every model.

    Blank fields fall back to the next level (user+all models, then the model's default).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )
    model = models.ForeignKey(
        AIModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="user_limits",
        help_text="Blank = every model.",
    )
    daily_image_limit = models.PositiveIntegerField(null=True, blank=True)
    monthly_image_limit = models.PositiveIntegerField(null=True, blank=True)
    max_running = models.PositiveIntegerField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "model"], name="userlimit_unique_user_model"),
            models.UniqueConstraint(
                fields=["user"], condition=Q(model__isnull=True), name="userlimit_unique_user_all"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.model or 'all models'}"


class UsageEntryQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def newest_first(self):
        return self.order_by("-created_at", "-id")


class UsageEntry(models.Model):
    """The usage ledger: a charge per accepted generation, a refund when it fails or is canceled.

    Usage in a period = charges − refunds; nothing is ever decremented in place, so the user's
    history shows what counted and what was given back. At most one of each kind per generation.
    """

    class Kind(models.TextChoices):
        CHARGE = "charge", "Charged"
        REFUND = "refund", "Refunded"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_entries"
    )
    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="usage_entries")
    generation = models.ForeignKey(
        Generation, null=True, on_delete=models.SET_NULL, related_name="usage_entries"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    images = models.PositiveIntegerField()
    reason = models.CharField(max_length=300, blank=True)
    # The charge's time, on both the charge and its refund: a refund today for yesterday's
    # generation gives back yesterday's image, not one of today's.
    charged_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UsageEntryQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "usage entries"
        indexes = [
            models.Index(fields=["user", "model", "charged_at"], name="usage_user_model_charged"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["generation", "kind"], name="usage_unique_gen_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.images} · {self.user}"

    @property
    def signed_images(self) -> int:
        return self.images if self.kind == self.Kind.CHARGE else -self.images
