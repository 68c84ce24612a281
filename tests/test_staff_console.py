"""The staff console: retry/cancel actions, failures view, usage dashboard, users' limits."""

from __future__ import annotations

import pytest

from generator import actions
from generator.admin_views import dashboard_data
from generator.models import Generation, UsageEntry, UserLimit
from generator.tasks import run_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def action(client, name, gens):
    return client.post(
        "/admin/generator/generation/",
        {"action": name, "_selected_action": [g.pk for g in gens]},
        follow=True,
    )


def test_retry_makes_a_new_counted_generation_with_the_same_settings(
    staff_client, owner, make_generation
):
    failed = make_generation(
        owner,
        status=Generation.Status.FAILED,
        error="boom",
        seed=42,
        num_images=2,
        negative_prompt="blur",
    )
    response = action(staff_client, "retry_selected", [failed])
    assert "Retried 1 generation" in response.content.decode()
    new = Generation.objects.get(parent=failed)
    assert (new.prompt, new.seed, new.num_images, new.negative_prompt, new.options) == (
        failed.prompt,
        42,
        2,
        "blur",
        failed.options,
    )
    assert UsageEntry.objects.get(generation=new).kind == "charge"
    assert new.dispatches == 0 or new.dispatched_at is not None


def test_retry_ignores_the_users_limit_but_counts(
    staff_client, owner, make_generation, local_model
):
    local_model.daily_image_limit = 0
    local_model.save()
    failed = make_generation(owner, status=Generation.Status.FAILED, error="boom")
    action(staff_client, "retry_selected", [failed])
    assert Generation.objects.filter(parent=failed).count() == 1


def test_cancel_stops_queued_and_running_and_refunds(staff_client, owner, local_model):
    queued, _ = actions.submit(owner, {"model": local_model, "prompt": "a", "num_images": 2})
    done, _ = actions.submit(owner, {"model": local_model, "prompt": "b"})
    run_generation(done.pk)
    response = action(staff_client, "cancel_selected", [queued, done])
    assert "Canceled 1 generation(s) (1 already finished" in response.content.decode()
    queued.refresh_from_db()
    done.refresh_from_db()
    assert queued.status == "canceled" and done.status == "completed"
    assert UsageEntry.objects.get(generation=queued, kind="refund").images == 2
    # A worker that picks up the canceled row afterwards does nothing.
    run_generation(queued.pk)
    queued.refresh_from_db()
    assert queued.status == "canceled" and queued.images.count() == 0


def test_the_failures_view_groups_by_provider_and_reason(
    staff_client, owner, stranger, make_generation
):
    for user in (owner, stranger, owner):
        make_generation(
            user, status=Generation.Status.FAILED, error="Limit reached at the provider."
        )
    make_generation(owner, status=Generation.Status.FAILED, error="Timed out")
    make_generation(owner, status=Generation.Status.COMPLETED)
    page = staff_client.get("/admin/generator/generation/failures/").content.decode()
    assert "4 failed generations" in page
    assert page.count('class="failure-group"') == 2
    assert "Limit reached at the provider." in page and "stranger@example.com" in page


def test_the_admin_index_links_the_console(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert "/admin/generator/generation/failures/" in page
    assert "/admin/generator/generation/dashboard/" in page


def test_the_dashboard_renders_an_svg_chart_and_provider_stats(
    staff_client, owner, make_generation
):
    gen = make_generation(owner, status=Generation.Status.QUEUED)
    run_generation(gen.pk)
    make_generation(owner, status=Generation.Status.FAILED, error="x")
    data = dashboard_data()
    local = next(p for p in data["providers"] if p["provider"] == "local")
    assert local["done"] == 1 and local["success_rate"] == 100.0
    assert local["median_latency"] is not None
    assert data["per_user"][0]["user__email"] == owner.email
    assert data["per_user"][0]["total"] == 2
    page = staff_client.get("/admin/generator/generation/dashboard/").content.decode()
    assert "<svg" in page and "<rect" in page
    assert 'src="http' not in page and 'href="http' not in page  # nothing from a CDN
    assert "owner@example.com" in page


def test_the_generation_list_shows_job_id_tag_and_filters_by_user(
    staff_client, owner, stranger, make_generation
):
    make_generation(owner, provider_job_id="job-123")
    make_generation(stranger)
    page = staff_client.get(f"/admin/generator/generation/?user__id__exact={owner.pk}")
    text = page.content.decode()
    assert page.status_code == 200 and "job-123" in text and owner.public_id in text
    assert [g.user for g in page.context["cl"].result_list] == [owner]


def test_the_user_page_shows_limits_usage_and_last_generations(staff_client, owner, local_model):
    local_model.daily_image_limit = 5
    local_model.save()
    UserLimit.objects.create(user=owner, model=local_model, monthly_image_limit=40)
    actions.submit(owner, {"model": local_model, "prompt": "a tiny boat", "num_images": 2})
    page = staff_client.get(f"/admin/accounts/user/{owner.pk}/change/").content.decode()
    assert "3 left today" in page and "38 left this month" in page
    assert "Last generations" in page and "Limit overrides" in page


def test_deactivate_cancels_queued_generations(staff_client, owner, local_model):
    gen, _ = actions.submit(owner, {"model": local_model, "prompt": "a"})
    staff_client.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [owner.pk]}
    )
    owner.refresh_from_db()
    gen.refresh_from_db()
    assert not owner.is_active
    assert gen.status == "canceled" and "deactivated" in gen.error


@pytest.mark.parametrize(
    "url",
    [
        "/admin/generator/generation/failures/",
        "/admin/generator/generation/dashboard/",
        "/admin/generator/generation/",
    ],
)
def test_a_normal_user_gets_the_admin_login_not_the_console(owner_client, url):
    response = owner_client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_staff_retry_sends_the_row_with_its_photo(staff_client, owner, local_model, monkeypatch):
    """The review's bug: staff Retry dispatched the new row, then attached the photo, so a
    worker could claim a generation without its input image. The copy is saved with the row
    and the task is sent once that commits."""
    from django.core.files.base import ContentFile

    from tests.simulators.base import png_bytes

    local_model.options = {**local_model.options, "input_image": True}  # a photo model
    local_model.save()
    failed = Generation.objects.create(
        user=owner,
        model=local_model,
        provider="local",
        prompt="a room",
        options={"size": "512x512"},
        status=Generation.Status.FAILED,
        error="boom",
    )
    failed.input_image.save("room.png", ContentFile(png_bytes(16, 16)), save=True)
    seen = []

    def spy(args, **kwargs):
        # What a worker claiming it right now would read, outside the admin's transaction.
        seen.append(Generation.objects.values_list("input_image", flat=True).get(pk=args[0]))

    monkeypatch.setattr("generator.tasks.run_generation.apply_async", spy)
    action(staff_client, "retry_selected", [failed])
    new = Generation.objects.get(parent=failed)
    assert seen == [new.input_image.name]
    assert new.input_image.name.startswith("inputs/") and new.input_image.name != (
        failed.input_image.name
    )
    with new.input_image.open("rb") as copy, failed.input_image.open("rb") as original:
        assert copy.read() == original.read()
