"""Monthly spend budgets: like the image limits (generator.limits), checked atomically in the
submit transaction, worded "… left this month, resets in …".

A user's budget is the monthly_budget on their all-models UserLimit row, else
EASEL_DEFAULT_MONTHLY_BUDGET; None means no budget. Spend is read from the ledger (charge
costs − refund costs, this month by the charge's time) after locking the user's row (the same
lock lock_and_check takes), so concurrent submissions stop at the exact cent.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from generator.limits import LimitExceeded, humanize_delta, period_bounds
from generator.models import Generation, UsageEntry, UserLimit


class BudgetExceeded(LimitExceeded):
    code = "budget_exceeded"


def budget_for(user) -> Decimal | None:
    row = UserLimit.objects.filter(user=user, model__isnull=True).values("monthly_budget").first()
    if row and row["monthly_budget"] is not None:
        return row["monthly_budget"]
    default = settings.EASEL_DEFAULT_MONTHLY_BUDGET
    return Decimal(default) if default not in (None, "") else None


def spent_this_month(user, bounds=None) -> Decimal:
    bounds = bounds or period_bounds()
    row = UsageEntry.objects.filter(user=user, charged_at__gte=bounds["month_start"]).aggregate(
        charged=Sum("cost", filter=Q(kind=UsageEntry.Kind.CHARGE), default=Decimal(0)),
        refunded=Sum("cost", filter=Q(kind=UsageEntry.Kind.REFUND), default=Decimal(0)),
    )
    return row["charged"] - row["refunded"]


def summary(user) -> str | None:
    budget = budget_for(user)
    if budget is None:
        return None
    bounds = period_bounds()
    left = max(Decimal(0), budget - spent_this_month(user, bounds))

    resets = humanize_delta(bounds["month_end"] - timezone.now())
    return f"{money(left)} of {money(budget)} budget left this month, resets in {resets}"


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def lock_and_check(user, cost: Decimal, *, enforce: bool = True) -> None:
    """Raise BudgetExceeded if `cost` more would go over the user's monthly budget.

    Inside transaction.atomic(), before the charge; without a budget or for a free generation
    there is nothing to count: no lock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("budget.lock_and_check must run inside transaction.atomic()")
    if not enforce or not cost:
        return
    budget = budget_for(user)
    if budget is None:
        return
    Generation.lock_owner(user.pk)
    bounds = period_bounds()
    left = budget - spent_this_month(user, bounds)
    if cost > left:
        resets = humanize_delta(bounds["month_end"] - timezone.now())
        raise BudgetExceeded(
            f"Monthly budget reached: {money(max(Decimal(0), left))} left this month "
            f"(this costs {money(cost)}), resets in {resets}."
        )


def spend_by_model_month(user):
    """The user's spend (charges − refunds) per model and month, newest month first."""
    charge, refund = Q(kind=UsageEntry.Kind.CHARGE), Q(kind=UsageEntry.Kind.REFUND)
    return (
        UsageEntry.objects.filter(user=user)
        .annotate(month=TruncMonth("charged_at"))
        .values("month", "model__name")
        .annotate(
            spent=Sum("cost", filter=charge, default=Decimal(0))
            - Sum("cost", filter=refund, default=Decimal(0)),
            images=Sum("images", filter=charge, default=0)
            - Sum("images", filter=refund, default=0),
        )
        .order_by("-month", "model__name")
    )


def spend_by(field: str):
    """All users' spend grouped by `field` ("user__email", "model__name", "model__provider"):
    `spent` all time and `spent_month` this month (charges − refunds), most spent first."""
    charge, refund = Q(kind=UsageEntry.Kind.CHARGE), Q(kind=UsageEntry.Kind.REFUND)
    this_month = Q(charged_at__gte=period_bounds()["month_start"])
    return (
        UsageEntry.objects.values(label=F(field))
        .annotate(
            spent=Sum("cost", filter=charge, default=Decimal(0))
            - Sum("cost", filter=refund, default=Decimal(0)),
            spent_month=Sum("cost", filter=charge & this_month, default=Decimal(0))
            - Sum("cost", filter=refund & this_month, default=Decimal(0)),
        )
        .order_by("-spent")
    )
