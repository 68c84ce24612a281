"""Fair use: per-user limits, the usage ledger with refunds, and what the prompt page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generator import actions, limits
from generator.models import Generation, UsageEntry, UserLimit
from generator.providers.base import LimitReached
from generator.tasks import run_generation
from tests.concurrent import run_at_once
from tests.conftest import make_user, require, uses_postgres

pytestmark = pytest.mark.django_db


def submit(user, model, n=1, **extra):
    data = {
        "model": model,
        "prompt": "a lighthouse",
        "num_images": n,
        "options": {"size": "256x256"},
        **extra,
    }
    return actions.submit(user, data)


def post_prompt(client, model, n=1, **headers):
    return client.post(
        "/",
        {"model": model.slug, "prompt": "a lighthouse", "size": "256x256", "num_images": n},
        headers=headers,
    )


def test_limits_resolve_user_model_override_then_user_all_then_model_default(owner, local_model):
    local_model.daily_image_limit = 10
    local_model.monthly_image_limit = 100
    local_model.max_running = 2
    local_model.save()
    assert limits.limits_for(owner, local_model) == limits.Limits(10, 100, 2)
    UserLimit.objects.create(user=owner, model=None, daily_image_limit=20, max_running=5)
    assert limits.limits_for(owner, local_model) == limits.Limits(20, 100, 5)
    UserLimit.objects.create(user=owner, model=local_model, daily_image_limit=3)
    assert limits.limits_for(owner, local_model) == limits.Limits(3, 100, 5)


def test_an_accepted_generation_is_charged_its_image_count(owner, local_model):
    gen, created = submit(owner, local_model, n=3)
    assert created
    entry = UsageEntry.objects.get(generation=gen)
    assert (entry.kind, entry.images, entry.user, entry.model) == ("charge", 3, owner, local_model)


def test_a_submission_over_the_daily_limit_creates_and_sends_nothing(owner, local_model):
    local_model.daily_image_limit = 3
    local_model.save()
    submit(owner, local_model, n=2)
    with pytest.raises(limits.LimitExceeded) as exc:
        submit(owner, local_model, n=2)
    assert "1 image left today" in exc.value.message and "resets in" in exc.value.message
    assert Generation.objects.count() == 1
    assert UsageEntry.objects.count() == 1
    submit(owner, local_model, n=1)  # exactly what is left is fine
    assert limits.allowance(owner, local_model).left_today == 0


def test_the_monthly_limit_counts_earlier_days_of_the_month(owner, local_model, settings):
    settings.TIME_ZONE = "UTC"
    local_model.monthly_image_limit = 4
    local_model.save()
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    gen, _ = submit(owner, local_model, n=3)
    UsageEntry.objects.filter(generation=gen).update(charged_at=now - timedelta(days=10))
    a = limits.allowance(owner, local_model, now=now)
    assert (a.used_today, a.used_month, a.left_month) == (0, 3, 1)
    assert a.month_resets_at == datetime(2026, 4, 1, tzinfo=UTC)
    # Last month's images do not count.
    UsageEntry.objects.filter(generation=gen).update(charged_at=now - timedelta(days=20))
    assert limits.allowance(owner, local_model, now=now).used_month == 0


def test_the_running_cap_counts_queued_and_running(owner, local_model, make_generation):
    local_model.max_running = 2
    local_model.save()
    make_generation(owner, status=Generation.Status.QUEUED)
    make_generation(owner, status=Generation.Status.RUNNING)
    make_generation(owner, status=Generation.Status.COMPLETED)
    with pytest.raises(limits.LimitExceeded) as exc:
        submit(owner, local_model)
    assert "queued or running" in exc.value.message


def test_a_failed_generation_gives_the_images_back(owner, local_model):
    local_model.daily_image_limit = 2
    local_model.save()
    gen, _ = submit(owner, local_model, n=2)
    assert limits.allowance(owner, local_model).left_today == 0
    Generation.objects.filter(pk=gen.pk).update(status=Generation.Status.RUNNING)
    gen.refresh_from_db()
    assert gen.fail("The provider refused the request (400): bad prompt")
    refund = UsageEntry.objects.get(generation=gen, kind="refund")
    assert refund.images == 2 and "bad prompt" in refund.reason
    assert limits.allowance(owner, local_model).left_today == 2
    # A second fail/cancel attempt is refused by the transition and refunds nothing more.
    assert not gen.cancel()
    assert UsageEntry.objects.filter(generation=gen, kind="refund").count() == 1


def test_a_canceled_generation_is_refunded_once(owner, local_model, make_generation):
    gen, _ = submit(owner, local_model, n=1)
    Generation.objects.filter(pk=gen.pk).update(status=Generation.Status.QUEUED)
    gen.refresh_from_db()
    assert gen.cancel("Canceled by staff.")
    assert UsageEntry.objects.refund(gen) is None  # idempotent per generation
    assert UsageEntry.objects.filter(generation=gen, kind="refund").count() == 1


def test_a_refund_gives_back_the_day_it_was_charged(owner, local_model):
    """A failure after midnight gives back yesterday's image, not one of today's."""
    local_model.daily_image_limit = 5
    local_model.save()
    gen, _ = submit(owner, local_model, n=2)
    UsageEntry.objects.filter(generation=gen).update(charged_at=gen.created_at - timedelta(days=1))
    Generation.objects.filter(pk=gen.pk).update(status=Generation.Status.RUNNING)
    gen.refresh_from_db()
    gen.fail("boom")
    assert limits.allowance(owner, local_model).used_today == 0


def test_a_double_click_on_the_last_image_gets_the_first_generation(owner, local_model):
    local_model.daily_image_limit = 1
    local_model.save()
    first, created = submit(owner, local_model, idempotency_key="key-last-image-1")
    again, created_again = submit(owner, local_model, idempotency_key="key-last-image-1")
    assert created and not created_again and again.pk == first.pk
    assert UsageEntry.objects.filter(user=owner).count() == 1
    with pytest.raises(limits.LimitExceeded):
        submit(owner, local_model, idempotency_key="key-last-image-2")


def test_only_a_submission_with_a_limit_locks_the_user_and_reads_the_ledger(owner, local_model):
    require(uses_postgres(), "SELECT … FOR UPDATE is what PostgreSQL runs (SQLite locks the file)")

    def statements() -> str:
        with CaptureQueriesContext(connection) as ctx:
            submit(owner, local_model)
        return " ".join(q["sql"] for q in ctx.captured_queries)

    unlimited = statements()
    assert "FOR UPDATE" not in unlimited and 'FROM "generator_usageentry"' not in unlimited
    local_model.monthly_image_limit = 50
    local_model.save()
    limited = statements()
    assert "FOR UPDATE" in limited and 'FROM "generator_usageentry"' in limited
    # The sum reads this month's rows only, whatever the user's history.
    assert '"generator_usageentry"."charged_at" >=' in limited


def test_limit_reached_at_the_provider_fails_refunds_and_says_so(owner, local_model, monkeypatch):
    from generator.providers.local import LocalProvider

    def refuse(self, gen):
        raise LimitReached()

    monkeypatch.setattr(LocalProvider, "submit", refuse)
    local_model.daily_image_limit = 1
    local_model.save()
    gen, _ = submit(owner, local_model, n=1)
    assert limits.allowance(owner, local_model).left_today == 0
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == "failed" and gen.error == "Limit reached at the provider."
    assert UsageEntry.objects.filter(generation=gen, kind="refund").exists()
    assert limits.allowance(owner, local_model).left_today == 1


def test_the_prompt_page_shows_what_is_left_and_when_it_resets(owner_client, owner, local_model):
    local_model.daily_image_limit = 5
    local_model.monthly_image_limit = 50
    local_model.save()
    submit(owner, local_model, n=2)
    page = owner_client.get("/").content.decode()
    assert "3 left today, resets in" in page
    assert "48 left this month, resets in" in page


def test_a_user_at_the_limit_sees_the_message_and_nothing_is_created(
    owner_client, owner, local_model
):
    local_model.daily_image_limit = 1
    local_model.save()
    submit(owner, local_model, n=1)
    response = post_prompt(owner_client, local_model)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Daily limit reached for" in page and "resets in" in page
    assert "0 left today, resets in" in page
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(
    "headers", [{"Accept": "application/json"}, {"HX-Request": "true"}], ids=["json", "htmx"]
)
def test_an_api_call_over_the_limit_gets_429_json(owner_client, owner, local_model, headers):
    local_model.daily_image_limit = 1
    local_model.save()
    submit(owner, local_model, n=1)
    response = post_prompt(owner_client, local_model, **headers)
    assert response.status_code == 429
    assert "Daily limit reached" in response.json()["error"]
    assert Generation.objects.count() == 1


def test_the_usage_history_lists_charges_and_refunds(owner_client, owner, stranger, local_model):
    gen, _ = submit(owner, local_model, n=2)
    Generation.objects.filter(pk=gen.pk).update(status=Generation.Status.RUNNING)
    gen.refresh_from_db()
    gen.fail("The provider refused the request (400): nope")
    other, _ = submit(stranger, local_model, n=1, prompt="the stranger's secret prompt")
    page = owner_client.get("/account/usage/").content.decode()
    assert "Charged" in page and "Refunded" in page and "+2 back" in page
    assert "nope" in page
    assert "stranger&#x27;s secret" not in page and "stranger's secret" not in page


def test_the_usage_page_needs_a_login(client):
    response = client.get("/account/usage/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_reset_times_follow_settings_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    now = datetime(2026, 7, 10, 3, 0, tzinfo=UTC)  # 23:00 on the 9th in New York
    bounds = limits.period_bounds(now)
    assert bounds["day_end"].astimezone(UTC) == datetime(2026, 7, 10, 4, 0, tzinfo=UTC)
    assert limits.humanize_delta(bounds["day_end"] - now) == "1 h 0 min"
    assert limits.humanize_delta(timedelta(hours=5, minutes=11, seconds=30)) == "5 h 12 min"


def test_the_submit_priority_comes_from_the_user_tier(django_user_model, local_model):
    high = make_user(django_user_model, priority="high")
    low = make_user(django_user_model, priority="low")
    assert submit(high, local_model)[0].priority < submit(low, local_model)[0].priority


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_submissions_with_three_left_create_exactly_three(
    django_user_model, local_model
):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL (row locks)")
    from config.celery import app

    app.conf.task_always_eager = False  # the three are only queued (a worker test purges)
    user = make_user(django_user_model)
    local_model.daily_image_limit = 3
    local_model.save()

    def one(i):
        data = {
            "model": local_model,
            "prompt": f"p{i}",
            "num_images": 1,
            "options": {"size": "256x256"},
        }
        try:
            actions.submit(user, data)
        except limits.LimitExceeded:
            return "refused"
        return "created"

    outcomes = run_at_once(20, one)
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 17
    assert Generation.objects.filter(user=user).count() == 3
    assert UsageEntry.objects.filter(user=user, kind="charge").count() == 3


def test_run_generation_refuses_nothing_after_a_cancel(owner, local_model, make_generation):
    """A generation canceled while queued is never run by a late worker."""
    gen = make_generation(owner, status=Generation.Status.QUEUED)
    assert gen.cancel("Canceled by staff.")
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == "canceled" and gen.images.count() == 0
