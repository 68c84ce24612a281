"""Headless Chromium: sign up → prompt → the finished image appears in the gallery."""

from __future__ import annotations

import pytest

from generator.models import Generation
from tests.conftest import shot
from tests.mailbox import confirm_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_prompt_and_see_the_image_in_the_gallery(live_server, page, worker, local_model):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # anonymous → log in
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=email]", "painter@example.com")
    page.fill("input[name=password1]", "a-Long-pass-42")
    page.fill("input[name=password2]", "a-Long-pass-42")
    page.click("form button[type=submit]")
    confirm_in_browser(page, "painter@example.com", f"{live_server.url}/")

    page.select_option("select[name=model]", "local-sketch")
    page.fill("textarea[name=prompt]", "a quiet harbour at dawn")
    page.select_option("select[name=size]", "256x256")
    shot(page, "01-prompt")
    page.click("#generate-form button[type=submit]")
    page.wait_for_url("**/?new=*")
    # The card updates itself to completed without a reload.
    page.wait_for_selector("article.gen-card[data-status=completed] img.thumb", timeout=30_000)
    shot(page, "02-completed")

    gen = Generation.objects.get()
    assert gen.status == "completed", worker.log()
    page.goto(f"{live_server.url}/gallery/?model=local-sketch&status=completed")
    img = page.locator(f"#gen-{gen.public_id} img.thumb")
    img.wait_for()
    natural_width = img.evaluate("el => el.complete ? el.naturalWidth : 0")
    assert natural_width > 0  # the thumbnail decoded as a real image
    shot(page, "03-gallery")
    page.goto(f"{live_server.url}/gallery/?status=failed")
    assert page.locator(f"#gen-{gen.public_id}").count() == 0
