"""Fair use and what it counted: per-user limits (UserLimit) and the usage ledger (UsageEntry).

The ledger's writes live here: `UsageEntry.objects.charge(gen)` in the submit transaction,
`UsageEntry.objects.refund(gen, reason)` when a generation fails or is canceled before the
provider did billable work, `UsageEntry.objects.keep(gen, reason)` (a note on the charge) when
it ends after the provider accepted it. Reads (what is
used and left) are generator.limits.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from generator.models import costs


class UserLimit(models.Model):
    """A per-user override of a model's limits. model = None applies to every model.

    Blank fields fall back to the next level (user+all models, then the model's default).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )
    model = models.ForeignKey(
        "generator.AIModel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="user_limits",
        help_text="Blank = every model.",
    )
    daily_image_limit = models.PositiveIntegerField(null=True, blank=True)
    monthly_image_limit = models.PositiveIntegerField(null=True, blank=True)
    max_running = models.PositiveIntegerField(null=True, blank=True)
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Spend per calendar month, all models (only on the all-models row; blank = "
        "EASEL_DEFAULT_MONTHLY_BUDGET).",
    )
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

    def charge(self, gen, cost=None) -> UsageEntry:
        """The charge for an accepted generation, in the submit's transaction."""
        return self.create(
            user_id=gen.user_id,
            model_id=gen.model_id,
            generation=gen,
            kind=UsageEntry.Kind.CHARGE,
            images=gen.num_images,
            cost=cost if cost is not None else costs.cost_of(gen),
            charged_at=gen.created_at,
            created_at=gen.created_at,
        )

    def refund(self, gen, reason: str = "") -> UsageEntry | None:
        """Give back what `gen` was charged. Idempotent: one refund per generation at most
        (the unique (generation, kind) makes a concurrent second one a no-op)."""
        entry = self.filter(generation_id=gen.pk, kind=UsageEntry.Kind.CHARGE).first()
        if entry is None:
            return None  # never charged (e.g. created before the ledger existed)
        if self.filter(generation_id=gen.pk, kind=UsageEntry.Kind.REFUND).exists():
            return None
        try:
            with transaction.atomic(using=self.db):
                return self.create(
                    user_id=entry.user_id,
                    model_id=entry.model_id,
                    generation_id=gen.pk,
                    kind=UsageEntry.Kind.REFUND,
                    images=entry.images,
                    cost=entry.cost,
                    charged_at=entry.charged_at,
                    reason=(reason or "")[:300],
                )
        except IntegrityError:
            return None  # a concurrent refund won

    def keep(self, gen, reason: str = "") -> int:
        """Record on `gen`'s charge why it is not given back (the provider had already taken
        the request): the usage history shows it. Returns the rows noted (0 or 1)."""
        note = f"Kept: the provider had already accepted it. {reason}".strip()
        return self.filter(generation_id=gen.pk, kind=UsageEntry.Kind.CHARGE).update(
            reason=note[:300]
        )


class UsageEntry(models.Model):
    """The usage ledger: a charge per accepted generation, a refund when it fails or is canceled.

    Usage in a period = charges − refunds; nothing is ever decremented in place, so the user's
    history shows what counted and what was given back. At most one of each kind per generation.
    """

    class Kind(models.TextChoices):
        CHARGE = "charge", "Charged"
        REFUND = "refund", "Refunded"

    # NULL once the user erased their account (generator.erase): the row still counts in
    # staff totals; anonymised_at says when it lost its user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="usage_entries",
    )
    anonymised_at = models.DateTimeField(null=True, blank=True)
    model = models.ForeignKey(
        "generator.AIModel", on_delete=models.CASCADE, related_name="usage_entries"
    )
    generation = models.ForeignKey(
        "generator.Generation", null=True, on_delete=models.SET_NULL, related_name="usage_entries"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    images = models.PositiveIntegerField()
    # What the charge cost (AIModel prices at submit time); a refund carries the same back.
    cost = models.DecimalField(max_digits=12, decimal_places=4, default=0)
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
