"""The staff console's own pages and operations (wired into the admin by GenerationAdmin).

- failures: failed generations across all users, grouped by provider and reason.
- dashboard: generations per day (30 days) by status and by model as server-rendered SVG,
  totals per user, and each provider's success rate and median latency over the last 24 h.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from datetime import datetime, time, timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from generator import budget, limits
from generator.models import Generation

logger = logging.getLogger(__name__)

STATUS_COLORS = {
    "completed": "#2f7d4a",
    "failed": "#b3382c",
    "canceled": "#8a8a8a",
    "running": "#d08a1e",
    "queued": "#4a6fa5",
}
MODEL_PALETTE = ["#4a6fa5", "#2f7d4a", "#b3382c", "#d08a1e", "#7a4fa0", "#2a8f8f", "#a5664a"]


# --- failures view -------------------------------------------------------------------


def failures(request: HttpRequest, admin_site) -> HttpResponse:
    """Failed generations across all users, grouped by (provider, reason), newest group first."""
    if not request.user.has_perm("generator.view_generation"):
        raise PermissionDenied  # is_staff alone opens the admin, not every user's failures
    since_days = 30
    since = timezone.now() - timedelta(days=since_days)
    failed = Generation.objects.filter(status=Generation.Status.FAILED, created_at__gte=since)
    # Sent, outcome unknown (issue 13): the request may have reached the provider and been
    # billed there, so it was not sent again; staff may want to check the provider's account.
    unknown = failed.filter(provider_state__has_key="outcome_unknown")
    only_unknown = request.GET.get("unknown") == "1"
    if only_unknown:
        failed = unknown
    groups = list(
        failed.values("provider", "error")
        .annotate(n=Count("id"), users=Count("user", distinct=True), last=Max("finished_at"))
        .order_by("-last", "provider")[:200]
    )
    recent = {}
    for g in groups:
        recent[(g["provider"], g["error"])] = list(
            failed.filter(provider=g["provider"], error=g["error"])
            .select_related("user", "model")
            .newest_first()[:5]
        )
    for g in groups:
        g["examples"] = recent[(g["provider"], g["error"])]
    context = {
        **admin_site.each_context(request),
        "title": "Failures",
        "groups": groups,
        "since_days": since_days,
        "total": failed.count(),
        "unknown_total": unknown.count(),
        "only_unknown": only_unknown,
    }
    return TemplateResponse(request, "admin/generator/failures.html", context)


# --- dashboard -----------------------------------------------------------------------


def _days(n: int) -> list:
    today = timezone.localdate()
    return [today - timedelta(days=i) for i in range(n - 1, -1, -1)]


def stacked_bars_svg(days: list, series: dict[str, dict], colors: dict[str, str]) -> dict:
    """Geometry for a stacked bar chart: one bar per day, one segment per series key."""
    # pad_right leaves room for half of the last date label, centred under the last bar
    # (10-px text, "01 Dec" is about 32 px wide): without it the label was cut ("01 De").
    width, height, pad_left, pad_bottom, pad_right = 720, 220, 36, 22, 24
    plot_h = height - pad_bottom - 8
    totals = [sum(series[k].get(d, 0) for k in series) for d in days]
    peak = max(totals + [1])
    bar_w = (width - pad_left - pad_right) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y = height - pad_bottom
        x = pad_left + i * bar_w
        for key in series:
            n = series[key].get(day, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            bars.append(
                {
                    "x": round(x + 1, 1),
                    "y": round(y, 1),
                    "w": round(bar_w - 2, 1),
                    "h": round(h, 1),
                    "color": colors[key],
                    "title": f"{day:%d %b}: {n} {key}",
                }
            )
    labels = [
        {"x": round(pad_left + i * bar_w + bar_w / 2, 1), "text": f"{d:%d %b}"}
        for i, d in enumerate(days)
        if i % 5 == 0 or i == len(days) - 1
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "peak": peak,
        "baseline": height - pad_bottom,
        "left": pad_left,
        "right": width - pad_right,
        "legend": [{"name": k, "color": colors[k]} for k in series],
    }


def dashboard_data(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    days = _days(30)
    tz = timezone.get_current_timezone()
    start = datetime.combine(days[0], time(), tzinfo=tz)
    recent = Generation.objects.filter(created_at__gte=start)

    by_status: dict[str, dict] = {s: {} for s in Generation.Status.values}
    by_model: dict[str, dict] = defaultdict(dict)
    rows = (
        recent.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "status", "model__name")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        by_status[row["status"]][row["day"]] = (
            by_status[row["status"]].get(row["day"], 0) + row["n"]
        )
        by_model[row["model__name"]][row["day"]] = (
            by_model[row["model__name"]].get(row["day"], 0) + row["n"]
        )
    by_status = {k: v for k, v in by_status.items() if v} or {"completed": {}}
    model_colors = {
        name: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, name in enumerate(sorted(by_model))
    }

    per_user = list(
        recent.values("user__email", "user_id")
        .annotate(
            total=Count("id"),
            completed=Count("id", filter=Q(status=Generation.Status.COMPLETED)),
            failed=Count("id", filter=Q(status=Generation.Status.FAILED)),
            images=Sum("num_images", filter=Q(status=Generation.Status.COMPLETED), default=0),
        )
        .order_by("-total")[:50]
    )

    day_ago = now - timedelta(hours=24)
    providers = []
    finished = Generation.objects.filter(finished_at__gte=day_ago)
    for row in (
        finished.values("provider")
        .annotate(
            done=Count("id", filter=Q(status=Generation.Status.COMPLETED)),
            failed=Count("id", filter=Q(status=Generation.Status.FAILED)),
            canceled=Count("id", filter=Q(status=Generation.Status.CANCELED)),
        )
        .order_by("provider")
    ):
        latencies = [
            (f - s).total_seconds()
            for s, f in finished.filter(
                provider=row["provider"],
                status=Generation.Status.COMPLETED,
                started_at__isnull=False,
            ).values_list("started_at", "finished_at")[:10000]
        ]
        judged = row["done"] + row["failed"]
        providers.append(
            {
                **row,
                "success_rate": (100.0 * row["done"] / judged) if judged else None,
                "median_latency": statistics.median(latencies) if latencies else None,
            }
        )

    return {
        "status_chart": stacked_bars_svg(days, by_status, STATUS_COLORS),
        "model_chart": stacked_bars_svg(days, dict(by_model), model_colors),
        "per_user": per_user,
        "providers": providers,
        "total_30d": recent.count(),
        # All time, the query /metrics' easel_generations gauge reads (config/metrics.py).
        "all_by_provider": sorted(Generation.objects.counts_by_provider_status().items()),
        "ledger": limits.ledger_totals(),
    }


def dashboard(request: HttpRequest, admin_site) -> HttpResponse:
    if not request.user.has_perm("generator.view_generation"):
        raise PermissionDenied
    context = {**admin_site.each_context(request), "title": "Usage dashboard", **dashboard_data()}
    context["spend_tables"] = [
        ("Spend by user", "User", budget.spend_by("user__email")[:50]),
        ("Spend by model", "Model", budget.spend_by("model__name")),
        ("Spend by provider", "Provider", budget.spend_by("model__provider")),
    ]
    return TemplateResponse(request, "admin/generator/dashboard.html", context)
