"""Issue #18: moderation before spend (block list, OpenAI-style moderation endpoint, a
provider's content-policy refusal) and what it costs (prices, spend, monthly budgets)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from generator import actions, budget, limits
from generator.models import AIModel, BlockedTerm, FlaggedPrompt, Generation, UsageEntry, UserLimit
from generator.moderation import PromptBlocked
from tests.concurrent import run_at_once
from tests.conftest import make_user, require, uses_postgres

pytestmark = pytest.mark.django_db


def openai_model(**fields):
    return AIModel.objects.create(
        slug=f"dalle-{AIModel.objects.count()}",
        name="DALL·E 2",
        provider="openai",
        remote_id="dall-e-2",
        options={"sizes": ["512x512", "1024x1024"], "max_images": 4},
        **fields,
    )


def post_prompt(client, model, prompt, size="512x512", **headers):
    data = {"model": model.slug, "prompt": prompt, "size": size, "num_images": 1}
    return client.post("/", data, headers=headers)


def image_requests(sim):
    return [r for r in sim.requests if r.path.startswith("/v1/images")]


# --- moderation before spend -----------------------------------------------------------------


@pytest.mark.usefixtures("openai_configured")
def test_a_blocked_prompt_reaches_no_provider_and_charges_nothing(
    owner_client, owner, openai_sim, django_capture_on_commit_callbacks
):
    model = openai_model(price_per_image=Decimal("0.02"))
    BlockedTerm.objects.create(pattern="dragon", note="test rule")
    response = post_prompt(owner_client, model, "A red DRAGON over the sea")
    assert response.status_code == 400
    page = response.content.decode()
    assert "matches the site&#x27;s content rules" in page and "Nothing was sent or charged" in page
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0
    assert image_requests(openai_sim) == []
    flagged = FlaggedPrompt.objects.get()
    assert (flagged.user, flagged.model, flagged.matched) == (owner, model, "dragon")
    assert flagged.prompt == "A red DRAGON over the sea"
    # The same account with an allowed prompt does reach the provider and is charged (control).
    with django_capture_on_commit_callbacks(execute=True):  # the send follows the commit
        assert post_prompt(owner_client, model, "a dragonfly on a leaf").status_code == 302
    assert len(image_requests(openai_sim)) == 1
    assert UsageEntry.objects.get().cost == Decimal("0.0200")


def test_a_regex_rule_and_a_disabled_rule(owner, local_model):
    BlockedTerm.objects.create(pattern=r"gore\w*", is_regex=True)
    BlockedTerm.objects.create(pattern="lighthouse", enabled=False)
    data = {"model": local_model, "prompt": "GOREFEST poster", "options": {"size": "256x256"}}
    with pytest.raises(PromptBlocked):
        actions.submit(owner, data)
    assert actions.submit(owner, {**data, "prompt": "a lighthouse"})[1] is True
    assert FlaggedPrompt.objects.get().matched == r"/gore\w*/"


def test_the_api_answers_400_for_a_blocked_prompt(owner_client, local_model):
    BlockedTerm.objects.create(pattern="dragon")
    response = post_prompt(
        owner_client, local_model, "dragon", "256x256", Accept="application/json"
    )
    assert response.status_code == 400
    assert "content rules" in response.json()["error"]
    assert UsageEntry.objects.count() == 0


def test_the_moderation_endpoint_flags_before_spend(settings, owner, local_model, openai_sim):
    settings.EASEL_MODERATION_URL = openai_sim.url + "/v1/moderations"
    settings.EASEL_MODERATION_API_KEY = openai_sim.api_key
    data = {"model": local_model, "prompt": "a violent scene", "options": {"size": "256x256"}}
    with pytest.raises(PromptBlocked):
        actions.submit(owner, data)
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0
    flagged = FlaggedPrompt.objects.get()
    assert (flagged.source, flagged.matched) == ("moderation", "violence")
    sent = [r for r in openai_sim.requests if r.path == "/v1/moderations"]
    assert sent[0].json == {"model": "omni-moderation-latest", "input": "a violent scene"}
    assert actions.submit(owner, {**data, "prompt": "a calm lake"})[1] is True


def test_moderation_endpoint_down_refuses_without_charging(settings, owner, local_model):
    settings.EASEL_MODERATION_URL = "http://127.0.0.1:9/v1/moderations"  # nothing listens
    data = {"model": local_model, "prompt": "a calm lake", "options": {"size": "256x256"}}
    with pytest.raises(limits.LimitExceeded) as exc:
        actions.submit(owner, data)
    assert exc.value.status == 503 and UsageEntry.objects.count() == 0


@pytest.mark.usefixtures("openai_configured")
def test_a_content_policy_refusal_shows_its_reason_and_is_refunded(
    owner, openai_sim, django_capture_on_commit_callbacks
):
    model = openai_model(price_per_image=Decimal("0.02"), price_per_megapixel=Decimal("0.10"))
    data = {"model": model, "prompt": "forbidden thing", "options": {"size": "1024x1024"}}
    with django_capture_on_commit_callbacks(execute=True):  # tasks run eagerly after the commit
        gen, _ = actions.submit(owner, data)
    gen.refresh_from_db()
    assert gen.status == Generation.Status.FAILED
    assert "content policy" in gen.error
    charge = UsageEntry.objects.get(generation=gen, kind="charge")
    refund = UsageEntry.objects.get(generation=gen, kind="refund")
    # 0.02 + 0.10 × 1.048576 MP = 0.1249 (4 places), given back in full.
    assert charge.cost == refund.cost == Decimal("0.1249")
    assert budget.spent_this_month(owner) == 0


# --- what it costs ---------------------------------------------------------------------------


def test_the_usage_page_and_dashboard_show_spend(owner_client, owner, local_model, admin_client):
    local_model.price_per_image = Decimal("0.25")
    local_model.save()
    actions.submit(owner, {"model": local_model, "prompt": "p", "num_images": 2, "options": {}})
    rows = list(budget.spend_by_model_month(owner))
    assert rows[0]["model__name"] == local_model.name and rows[0]["spent"] == Decimal("0.50")
    page = owner_client.get("/account/usage/").content.decode()
    assert "Spend by model and month" in page and "0.50" in page
    dash = admin_client.get("/admin/generator/generation/dashboard/").content.decode()
    assert "Spend by user" in dash and owner.email in dash and "Spend by provider" in dash
    # A charge of an earlier month counts all time, not this month.
    UsageEntry.objects.create(
        user=owner, model=local_model, kind=UsageEntry.Kind.CHARGE, images=1,
        cost=Decimal("2.00"), charged_at=limits.period_bounds()["month_start"] - timedelta(days=3),
    )  # fmt: skip
    by_user = {r["label"]: r for r in budget.spend_by("user__email")}
    assert by_user[owner.email]["spent_month"] == Decimal("0.50")
    assert by_user[owner.email]["spent"] == Decimal("2.50")
    dash = admin_client.get("/admin/generator/generation/dashboard/").content.decode()
    assert "This month" in dash and "2.50" in dash


def test_a_budget_refusal_says_what_is_left_and_when_it_resets(owner_client, owner, local_model):
    local_model.price_per_image = Decimal("0.40")
    local_model.save()
    UserLimit.objects.create(user=owner, monthly_budget=Decimal("1.00"))
    for _ in range(2):
        actions.submit(owner, {"model": local_model, "prompt": "p", "options": {}})
    response = post_prompt(owner_client, local_model, "p", "256x256")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Monthly budget reached: 0.20 left this month (this costs 0.40), resets in" in page
    assert budget.summary(owner).startswith("0.20 of 1.00 budget left this month, resets in")
    home = owner_client.get("/").content.decode()
    assert "0.20 of 1.00 budget left this month, resets in" in home


def test_the_default_budget_applies_without_an_override(settings, owner, local_model):
    settings.EASEL_DEFAULT_MONTHLY_BUDGET = "0.30"
    local_model.price_per_image = Decimal("0.30")
    local_model.save()
    data = {"model": local_model, "prompt": "p", "options": {}}
    actions.submit(owner, data)
    with pytest.raises(budget.BudgetExceeded):
        actions.submit(owner, data)


@pytest.mark.django_db(transaction=True)
def test_a_budget_stops_concurrent_submissions_at_the_exact_cent(django_user_model, local_model):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL (row locks)")
    from config.celery import app

    app.conf.task_always_eager = False  # only queued (a worker test purges)
    user = make_user(django_user_model)
    local_model.price_per_image = Decimal("0.35")
    local_model.save()
    UserLimit.objects.create(user=user, monthly_budget=Decimal("2.10"))  # exactly 6 × 0.35

    def one(i):
        data = {"model": local_model, "prompt": f"p{i}", "options": {"size": "256x256"}}
        try:
            actions.submit(user, data)
        except budget.BudgetExceeded:
            return "refused"
        return "created"

    outcomes = run_at_once(20, one)
    assert sorted(outcomes) == ["created"] * 6 + ["refused"] * 14  # floor(2.10 / 0.35) = 6
    assert Generation.objects.filter(user=user).count() == 6
    assert budget.spent_this_month(user) == Decimal("2.10")


def test_staff_manage_the_block_list_and_review_flagged_prompts(admin_client, owner, local_model):
    bad = admin_client.post(
        "/admin/generator/blockedterm/add/",
        {
            "pattern": "(unclosed",
            "is_regex": "on",
            "whole_word": "on",
            "enabled": "on",
            "created_at_0": "2026-12-01",
            "created_at_1": "10:00:00",
        },
    )
    assert bad.status_code == 200 and "Not a valid regular expression" in bad.content.decode()
    ok = admin_client.post(
        "/admin/generator/blockedterm/add/",
        {
            "pattern": "dragon",
            "whole_word": "on",
            "enabled": "on",
            "created_at_0": "2026-12-01",
            "created_at_1": "10:00:00",
        },
    )
    assert ok.status_code == 302 and BlockedTerm.objects.get().pattern == "dragon"
    with pytest.raises(PromptBlocked):
        actions.submit(owner, {"model": local_model, "prompt": "a dragon", "options": {}})
    page = admin_client.get("/admin/generator/flaggedprompt/").content.decode()
    assert "a dragon" in page and owner.email in page and local_model.name in page
