"""Headless Chromium: a blocked prompt on the prompt page is refused with a clear message,
creates nothing, charges nothing and is listed for staff review (issue #18)."""

from __future__ import annotations

import pytest

from generator.models import BlockedTerm, FlaggedPrompt, Generation, UsageEntry
from tests.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_blocked_prompt_is_refused_on_the_page(live_server, page, local_model):
    BlockedTerm.objects.create(pattern="dragon")
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=email]", "painter@example.com")
    page.fill("input[name=password1]", "a-Long-pass-42")
    page.fill("input[name=password2]", "a-Long-pass-42")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.select_option("select[name=model]", "local-sketch")
    page.fill("textarea[name=prompt]", "a dragon at dawn")
    page.select_option("select[name=size]", "256x256")
    page.click("#generate-form button[type=submit]")
    page.get_by_text("matches the site's content rules").wait_for(timeout=15_000)
    shot(page, "moderation-refused")
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0
    assert FlaggedPrompt.objects.get().prompt == "a dragon at dawn"
