"""Headless Chromium (issue #18): the owner signs in, shares a generation from its detail page
with the prompt shown and copies the link; a visitor with no account (another browser context)
opens it and sees the image loaded and the prompt; the owner revokes; the visitor's reload is
a 404. Both pages run under the site's Content-Security-Policy and pass axe-core."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress

from generator.models import Generation, ShareLink
from generator.tasks import run_generation
from tests.conftest import new_page, shot
from tests.test_studio_browser import axe_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-Long-pass-42"
PROMPT = "a paper boat on a rainy street"


@pytest.fixture
def painter(django_user_model):
    user = django_user_model.objects.create_user(email="painter@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def made(painter, make_generation) -> Generation:
    gen = make_generation(painter, status=Generation.Status.QUEUED, prompt=PROMPT)
    run_generation(gen.pk)  # the local renderer, in-process: a real PNG in the media folder
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    return gen


def test_a_shared_link_shows_the_image_to_a_visitor_and_404s_after_revoke(
    live_server, page, browser, painter, made
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", painter.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/gallery/{made.public_id}/")
    page.select_option("select[name=expiry]", "7")
    page.check("input[name=show_prompt]")
    assert not page.is_checked("input[name=allow_indexing]")
    page.click("#share button[type=submit]")
    page.locator(".message", has_text="Share link created").wait_for()
    link = ShareLink.objects.get()
    assert link.show_prompt and not link.allow_indexing and link.expires_at is not None

    shown = page.input_value(".share-url")
    page.click("#share button[data-copy-text]")
    page.get_by_text("Link copied.").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown == f"{live_server.url}/s/{link.token}/"
    axe_check(page, "detail with a share link")
    shot(page, "share-detail")

    visitor = new_page(browser)  # no cookies of the owner's
    try:
        response = visitor.goto(copied)
        assert response.status == 200
        assert response.headers["x-robots-tag"] == "noindex"
        img = visitor.locator("article.shared img").first
        img.wait_for()
        visitor.wait_for_function(
            "() => { const i = document.querySelector('article.shared img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        assert img.evaluate("i => i.naturalWidth") == made.images.get().width
        assert visitor.locator("h1").inner_text() == PROMPT
        assert painter.email not in visitor.content()
        axe_check(visitor, "shared page")
        shot(visitor, "share-public")

        page.click("#share button.danger")  # Revoke
        page.locator(".message", has_text="Link revoked").wait_for()
        assert page.locator(".share-url").count() == 0

        again = visitor.reload()
        assert again.status == 404
        assert PROMPT not in visitor.content()
        assert visitor.csp_errors == [] and page.csp_errors == []
    finally:
        visitor.context.close()
