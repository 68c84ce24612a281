"""Headless Chromium: a blocked prompt on the prompt page is refused with a clear message,
creates nothing, charges nothing and is listed for staff review (issue #18)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from generator.models import BlockedTerm, FlaggedPrompt, Generation, UsageEntry
from tests.conftest import make_user, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_blocked_prompt_is_refused_on_the_page(live_server, page, local_model, django_user_model):
    BlockedTerm.objects.create(pattern="dragon")
    client = Client()
    client.force_login(make_user(django_user_model, email="painter@example.com"))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": cookie.key, "value": cookie.value, "url": live_server.url}]
    )  # signed in as that user (the sign-up form itself is tests/test_browser.py's)
    page.goto(f"{live_server.url}/")

    page.select_option("select[name=model]", "local-sketch")
    page.fill("textarea[name=prompt]", "a dragon at dawn")
    page.select_option("select[name=size]", "256x256")
    page.click("#generate-form button[type=submit]")
    page.get_by_text("matches the site's content rules").wait_for(timeout=15_000)
    shot(page, "moderation-refused")
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0
    assert FlaggedPrompt.objects.get().prompt == "a dragon at dawn"
