"""Headless Chromium: after a retention run, the owner's gallery and the detail page show the
expired generation as expired — its words visible, a placeholder, no broken image — while the
kept one still shows its picture (issue #18)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from generator.models import Generation, RetentionPolicy
from tests.conftest import make_user, shot
from tests.test_retention import stored
from tests.test_studio_browser import axe_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every <img> on the page, once loaded: a broken one has naturalWidth 0.
IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(done => { img.onload = img.onerror = done; })));
  return imgs.map(img => ({src: img.currentSrc, width: img.naturalWidth}));
}"""


def sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def test_the_gallery_shows_an_expired_card_as_expired_and_no_broken_image(
    live_server, page, local_model, make_generation, django_user_model
):
    owner = make_user(django_user_model, email="keeper@example.com")
    RetentionPolicy.objects.create(keep_days=30)
    old = stored(owner, local_model, make_generation, days=31, prompt="an old harbour", photo=True)
    new = stored(owner, local_model, make_generation, days=2, prompt="a new harbour")
    call_command("retention")
    old.refresh_from_db()
    assert old.images_expired_at is not None

    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/gallery/")
    card = page.locator(f"#gen-{old.public_id}")
    card.get_by_text("Images expired on").wait_for()
    assert card.locator("img").count() == 0 and card.locator(".placeholder.expired").count() == 1
    assert page.locator(f"#gen-{new.public_id} img").count() == 1
    images = page.evaluate(IMAGES)
    assert images and all(img["width"] > 0 for img in images), images
    shot(page, "retention-gallery")
    axe_check(page, "gallery with an expired card")

    page.goto(f"{live_server.url}/gallery/{old.public_id}/")
    page.locator(".images").get_by_text("Images expired on").wait_for()
    assert page.get_by_role("link", name="Download").count() == 0
    assert all(img["width"] > 0 for img in page.evaluate(IMAGES))
    axe_check(page, "detail of an expired generation")
    shot(page, "retention-detail")
    page.get_by_role("button", name="Re-run").click()  # rerun still works
    page.wait_for_url("**/?new=*")
    assert Generation.objects.filter(parent=old).count() == 1
    assert page.csp_errors == []
