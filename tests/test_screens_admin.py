"""Issue 16, the admin as a newcomer sees it, on a phone (390×844) and a desktop (1280×900): the
index has no two sections of the same name, and every label of the dashboard's charts is drawn
whole inside its chart. Each size: no sideways scroll on the phone, no CSP refusal, no serious
axe-core violation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generator.models import Generation
from tests.conftest import make_user, shot
from tests.test_screens import DESKTOP, PHONE, new_page, no_sideways_scroll
from tests.test_staff_browser import admin_login
from tests.test_studio_browser import axe_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser(
        email="boss@example.com", password="pw-Secret-123"
    )


def staff_page(browser, size, base, boss):
    page = new_page(browser, size)
    admin_login(page, base, boss.email)
    page.wait_for_url(f"{base}/admin/")
    return page


@pytest.mark.parametrize("size", SIZES)
def test_the_admin_index_names_each_section_once(live_server, browser, boss, size):
    page = staff_page(browser, size, live_server.url, boss)
    try:
        captions = [
            " ".join(t.split())
            for t in page.locator(
                "#content-main .app-list caption, #content-main caption"
            ).all_inner_texts()
        ]
        apps = [c for c in captions if c.upper() != "STAFF CONSOLE"]
        # As shown (the admin upper-cases captions): allauth's e-mail addresses, Easel's users.
        assert "ACCOUNTS" in [c.upper() for c in apps], captions
        assert "USERS AND ALLOWANCES" in [c.upper() for c in apps], captions
        assert len({c.upper() for c in apps}) == len(apps), f"a section name twice: {captions}"
        # Each section's name is what its own rows are about.
        users = page.locator("#content-main .app-accounts")
        assert "Users" in users.inner_text()
        emails = page.locator("#content-main .app-account")
        assert "Email addresses" in emails.inner_text() or "E-mail" in emails.inner_text()
        # The staff console's descriptions are read across, not a letter a line.
        table = page.locator("#staff-console table").bounding_box()
        for cell in page.locator("#staff-console td").all():
            box = cell.bounding_box()
            assert box["width"] >= 0.5 * table["width"] and box["height"] < 100, (box, table)
        if size == PHONE:
            no_sideways_scroll(page, PHONE["width"])
        shot(page, f"screens-admin-index-{'phone' if size == PHONE else 'desktop'}")
        axe_check(page, "admin index")
        assert not page.csp_errors, page.csp_errors
    finally:
        page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_every_chart_label_is_whole_inside_its_chart(
    live_server, browser, boss, django_user_model, make_generation, size
):
    user = make_user(django_user_model, email="painter@example.com")
    now = timezone.now()
    for days_ago in (0, 3, 12, 29):  # the first and the last day of the chart have bars
        gen = make_generation(user, prompt=f"{days_ago} days ago")
        Generation.objects.filter(pk=gen.pk).update(created_at=now - timedelta(days=days_ago))
    page = staff_page(browser, size, live_server.url, boss)
    try:
        page.goto(f"{live_server.url}/admin/generator/generation/dashboard/")
        charts = page.locator("svg.bars")
        assert charts.count() == 2
        for n in range(charts.count()):
            chart = charts.nth(n)
            assert chart.locator("rect").count() > 0
            box = chart.bounding_box()
            texts = chart.locator("text")
            labels = texts.all_text_contents()
            # Date labels every fifth day and on the last (today), plus the peak and the zero.
            assert labels[-1] == f"{timezone.localdate():%d %b}", labels
            assert len(labels) >= 8, labels
            for i in range(texts.count()):
                t = texts.nth(i).bounding_box()
                inside = (
                    t["x"] >= box["x"] - 0.5
                    and t["y"] >= box["y"] - 0.5
                    and t["x"] + t["width"] <= box["x"] + box["width"] + 0.5
                    and t["y"] + t["height"] <= box["y"] + box["height"] + 0.5
                )
                assert inside, f"chart {n}: label {labels[i]!r} at {t} is cut by {box}"
        if size == PHONE:
            no_sideways_scroll(page, PHONE["width"])
        shot(page, f"screens-admin-dashboard-{'phone' if size == PHONE else 'desktop'}")
        axe_check(page, "admin dashboard")
        assert not page.csp_errors, page.csp_errors
    finally:
        page.context.close()
