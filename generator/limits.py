"""Fair use: per-user, per-model limits and the usage ledger behind them.

Limits resolve per field: the user's override for this model, else the user's override for
all models, else the model's default; None means unlimited. Usage is read from the ledger
(charges − refunds, by the charge's time) so a failed or canceled generation gives its images
back through a visible refund entry, never a silent decrement.

`lock_and_check` must run inside the submit transaction (before UsageEntry.objects.charge): where a limit applies it locks the
user's row (SELECT … FOR UPDATE), so concurrent submissions by one user are counted one after
another and 20 parallel requests with 3 images left create exactly 3 generations. Usage is
summed over this month's ledger rows only (index user, model, charged_at), never all history.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from generator.models import AIModel, Generation, UsageEntry, UserLimit

LIMIT_FIELDS = ("daily_image_limit", "monthly_image_limit", "max_running")


class LimitExceeded(Exception):
    """A submission over the user's limit; `message` is shown to the user as is, `status` and
    `code` are what the pages and both API dialects answer with."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class VerificationRequired(LimitExceeded):
    """A model with limits, and an account whose e-mail is not verified: limits are per person,
    so one person cannot take a fresh allowance with every new address."""

    status = 403
    code = "email_not_verified"


def needs_verification(user) -> bool:
    """Whether `user` must verify an e-mail address before using a model with limits
    (EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL; staff and a service's end users are exempt: the
    service vouches for them)."""
    if not settings.EASEL_LIMITED_MODELS_NEED_VERIFIED_EMAIL:
        return False
    if user.is_staff or getattr(user, "service_owner_id", None):
        return False
    return not EmailAddress.objects.filter(user=user, verified=True).exists()


@dataclass(frozen=True)
class Limits:
    daily: int | None = None
    monthly: int | None = None
    running: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.daily is None and self.monthly is None and self.running is None


@dataclass(frozen=True)
class Allowance:
    """What a user has used and has left of one model, now."""

    model: AIModel
    limits: Limits
    used_today: int
    used_month: int
    active: int
    day_resets_at: datetime
    month_resets_at: datetime
    now: datetime

    @property
    def left_today(self) -> int | None:
        return None if self.limits.daily is None else max(0, self.limits.daily - self.used_today)

    @property
    def left_month(self) -> int | None:
        if self.limits.monthly is None:
            return None
        return max(0, self.limits.monthly - self.used_month)

    @property
    def left(self) -> int | None:
        """Images that can still be asked for now (the tighter of day and month)."""
        values = [v for v in (self.left_today, self.left_month) if v is not None]
        return min(values) if values else None

    @property
    def running_left(self) -> int | None:
        return None if self.limits.running is None else max(0, self.limits.running - self.active)

    @property
    def day_resets_in(self) -> str:
        return humanize_delta(self.day_resets_at - self.now)

    @property
    def month_resets_in(self) -> str:
        return humanize_delta(self.month_resets_at - self.now)

    def summary(self) -> str:
        """One line for the prompt page, e.g. '3 left today, resets in 5 h 12 min'."""
        parts = []
        if self.left_today is not None:
            parts.append(f"{self.left_today} left today, resets in {self.day_resets_in}")
        if self.left_month is not None:
            parts.append(f"{self.left_month} left this month, resets in {self.month_resets_in}")
        if self.limits.running is not None:
            parts.append(f"{self.active} of {self.limits.running} running at once")
        return "; ".join(parts) or "No limit"


def humanize_delta(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() + 59) // 60)  # round up: never say "0 min" early
    days, rem = divmod(minutes, 24 * 60)
    hours, mins = divmod(rem, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def _tz():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def period_bounds(now: datetime | None = None) -> dict[str, datetime]:
    """Start of today / this month and the next resets, in settings.TIME_ZONE."""
    tz = _tz()
    local = timezone.localtime(now or timezone.now(), tz)
    today = local.date()
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    # datetime.combine with a zoneinfo gives the right offset across DST changes.
    return {
        "day_start": datetime.combine(today, time(), tzinfo=tz),
        "day_end": datetime.combine(today + timedelta(days=1), time(), tzinfo=tz),
        "month_start": datetime.combine(month_start, time(), tzinfo=tz),
        "month_end": datetime.combine(next_month, time(), tzinfo=tz),
    }


def limits_for(user, model: AIModel) -> Limits:
    overrides = {
        ul.model_id: ul
        for ul in UserLimit.objects.filter(user=user).filter(Q(model=model) | Q(model__isnull=True))
    }
    values = []
    for field in LIMIT_FIELDS:
        value = None
        for source in (overrides.get(model.pk), overrides.get(None), model):
            if source is not None and getattr(source, field) is not None:
                value = getattr(source, field)
                break
        values.append(value)
    return Limits(*values)


def _used(user, model: AIModel, bounds: dict[str, datetime]) -> tuple[int, int]:
    """Images used today and this month: one indexed query over this month's ledger rows."""
    day = Q(charged_at__gte=bounds["day_start"])
    charge, refund = Q(kind=UsageEntry.Kind.CHARGE), Q(kind=UsageEntry.Kind.REFUND)
    row = UsageEntry.objects.filter(
        user=user, model=model, charged_at__gte=bounds["month_start"]
    ).aggregate(
        day=Sum("images", filter=day & charge, default=0)
        - Sum("images", filter=day & refund, default=0),
        month=Sum("images", filter=charge, default=0) - Sum("images", filter=refund, default=0),
    )
    return row["day"], row["month"]


def allowance(
    user, model: AIModel, now: datetime | None = None, limits: Limits | None = None
) -> Allowance:
    now = now or timezone.now()
    bounds = period_bounds(now)
    limits = limits if limits is not None else limits_for(user, model)
    used_today, used_month = _used(user, model, bounds)
    return Allowance(
        model=model,
        limits=limits,
        used_today=used_today,
        used_month=used_month,
        active=Generation.objects.for_user(user).for_model(model).active().count(),
        day_resets_at=bounds["day_end"],
        month_resets_at=bounds["month_end"],
        now=now,
    )


def allowances(user, models_: list[AIModel] | None = None) -> list[Allowance]:
    models_ = models_ if models_ is not None else list(AIModel.objects.enabled())
    return [allowance(user, m) for m in models_]


def lock_and_check(user, model: AIModel, num_images: int, *, enforce: bool = True) -> None:
    """Lock the user's row and raise LimitExceeded if `num_images` more would go over a limit.

    Call inside transaction.atomic(), before the generation is saved; the ledger's charge
    (UsageEntry.objects.charge) follows in the same transaction, so the check and the charge are one step for concurrent submissions.
    Without any limit for this user and model there is nothing to count: one query, no lock.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_and_check must run inside transaction.atomic()")
    user_limits = limits_for(user, model)
    if user_limits.unlimited:
        return  # nothing to count, so nothing to serialise: no lock, no ledger sums
    if enforce and needs_verification(user):
        raise VerificationRequired(
            f"Verify your e-mail address to use {model.name}: it has limits per person. Open the "
            "link we sent you, or send it again from Account → E-mail addresses."
        )
    Generation.lock_owner(user.pk)
    if not enforce:
        return
    a = allowance(user, model, limits=user_limits)
    if a.limits.running is not None and a.active >= a.limits.running:
        raise LimitExceeded(
            f"You already have {a.active} generation{'s' if a.active != 1 else ''} queued or "
            f"running with {model.name} (the most at once is {a.limits.running}). "
            "Wait for one to finish."
        )
    if a.left_today is not None and num_images > a.left_today:
        raise LimitExceeded(
            f"Daily limit reached for {model.name}: {_images(a.left_today)} left today "
            f"(you asked for {num_images}), resets in {a.day_resets_in}."
        )
    if a.left_month is not None and num_images > a.left_month:
        raise LimitExceeded(
            f"Monthly limit reached for {model.name}: {_images(a.left_month)} left this month "
            f"(you asked for {num_images}), resets in {a.month_resets_in}."
        )


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def usage_totals(user) -> models.QuerySet:
    """Per model: images charged and refunded, all time (for the history page and admin)."""
    return (
        UsageEntry.objects.filter(user=user)
        .values("model__name")
        .annotate(
            charged=Sum("images", filter=Q(kind=UsageEntry.Kind.CHARGE), default=0),
            refunded=Sum("images", filter=Q(kind=UsageEntry.Kind.REFUND), default=0),
        )
        .order_by("model__name")
    )


def ledger_totals() -> dict:
    """Images charged and refunded across every user, all time, erased accounts included
    (their rows are kept with user NULL): the staff dashboard's ledger totals."""
    return UsageEntry.objects.aggregate(
        charged=Sum("images", filter=Q(kind=UsageEntry.Kind.CHARGE), default=0),
        refunded=Sum("images", filter=Q(kind=UsageEntry.Kind.REFUND), default=0),
        anonymised=Sum(
            "images", filter=Q(kind=UsageEntry.Kind.CHARGE, user__isnull=True), default=0
        ),
    )
