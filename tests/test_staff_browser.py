"""Headless Chromium as staff: retry, cancel and the failures view in the admin; a normal user
gets the admin login page instead of the console."""

from __future__ import annotations

import pytest
from django.utils import timezone

from generator.models import Generation, UsageEntry
from tests.conftest import make_user, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def admin_login(page, base, email):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", "pw-Secret-123")
    page.click("input[type=submit], button[type=submit]")


def run_action(page, base, name, gen):
    page.goto(f"{base}/admin/generator/generation/")
    page.check(f"input[name=_selected_action][value='{gen.pk}']")
    page.select_option("select[name=action]", name)
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist li")


def test_staff_retry_cancel_and_failures_view(
    live_server, page, django_user_model, local_model, make_generation
):
    staff = django_user_model.objects.create_superuser(
        email="boss@example.com", password="pw-Secret-123"
    )
    user = make_user(django_user_model, email="painter@example.com")
    failed = make_generation(
        user,
        status=Generation.Status.FAILED,
        prompt="a stormy sea",
        error="Limit reached at the provider.",
        options={"size": "256x256"},
    )
    # In the task queue already (dispatched), so the fair queue does not start it meanwhile.
    queued = make_generation(
        user, status=Generation.Status.QUEUED, prompt="a calm lake", dispatched_at=timezone.now()
    )
    base = live_server.url

    admin_login(page, base, staff.email)
    page.wait_for_url(f"{base}/admin/")
    page.click("#staff-console a:has-text('Failures')")
    page.wait_for_url("**/failures/")
    group = page.locator("tr.failure-group")
    assert group.count() == 1
    assert "Limit reached at the provider." in group.inner_text()
    assert failed.public_id in group.inner_text()
    shot(page, "staff-01-failures")

    run_action(page, base, "retry_selected", failed)
    assert "Retried 1 generation" in page.locator("ul.messagelist").inner_text()
    retry = Generation.objects.get(parent=failed)
    assert retry.prompt == "a stormy sea" and retry.status == "completed"  # eager Celery ran it
    assert UsageEntry.objects.filter(generation=retry, kind="charge").exists()

    run_action(page, base, "cancel_selected", queued)
    assert "Canceled 1 generation" in page.locator("ul.messagelist").inner_text()
    queued.refresh_from_db()
    assert queued.status == "canceled"
    shot(page, "staff-02-after-cancel")

    page.goto(f"{base}/admin/generator/generation/dashboard/")
    assert page.locator("svg.bars rect").count() > 0


def test_a_normal_user_gets_the_admin_login_page(live_server, page, django_user_model):  # noqa: F811
    user = make_user(django_user_model, email="visitor@example.com")
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", "pw-Secret-123")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")
    for url in ("/admin/", "/admin/generator/generation/failures/"):
        page.goto(f"{base}{url}")
        assert "/admin/login/" in page.url
        assert page.locator("input[name=username]").count() == 1
        assert page.locator("#staff-console, tr.failure-group").count() == 0
