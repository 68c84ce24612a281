"""Headless Chromium against a live server and a real Celery worker: the studio as a person
uses it. Screenshots go to test-artifacts/screenshots/ (git-ignored).

Also an accessibility check: axe-core (vendored in tests/vendor/, test equipment) is run in the
page; a serious or critical violation fails the test.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from generator.models import AIModel, Generation
from tests.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
PASSWORD = "a-Long-pass-42"


@pytest.fixture
def worker(start_worker):
    # Long enough that the card is seen running with a progress bar.
    return start_worker(delay=3.0)


@pytest.fixture
def painter(django_user_model, local_model):
    # Verified like a confirmed sign-up: the log-in page needs that under mandatory verification.
    user = django_user_model.objects.create_user(email="painter@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def log_in(page, base_url, email="painter@example.com"):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def axe_check(page, name):
    """No serious or critical axe-core violations on the current page."""
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"


def test_submit_and_the_card_moves_to_completed_without_a_reload(
    live_server, page, worker, painter
):
    log_in(page, live_server.url)
    page.select_option("select[name=model]", "local-sketch")
    page.fill("textarea[name=prompt]", "a lighthouse in a storm")
    page.select_option("select[name=size]", "256x256")
    page.click("#generate-form button[type=submit]")
    page.wait_for_url("**/?new=*")
    gen = Generation.objects.get()
    card = f"#gen-{gen.public_id}"
    # Record every state the card passes through (screenshots alone could miss one).
    page.evaluate(
        """(sel) => {
          window.__noReload = true; window.__seen = []; window.__progress = false;
          const note = () => {
            const c = document.querySelector(sel);
            if (!c) return;
            if (window.__seen[window.__seen.length - 1] !== c.dataset.status) window.__seen.push(c.dataset.status);
            if (c.querySelector('progress')) window.__progress = true;
          };
          note();
          new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
        }""",
        card,
    )
    try:  # a picture of the running card, when the machine is quick enough to catch it
        page.wait_for_selector(f"{card}[data-status=running] progress", timeout=10_000)
        shot(page, "studio-01-running")
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(f"{card}[data-status=completed] img.thumb", timeout=60_000)
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"
    seen = page.evaluate("window.__seen")
    assert seen[-1] == "completed" and "running" in seen, seen
    assert page.evaluate("window.__progress"), "no progress bar while running"
    assert page.locator(f"{card} [data-poll]").count() == 0
    shot(page, "studio-02-completed")
    assert not page.csp_errors, page.csp_errors
    axe_check(page, "home")


def test_search_and_star_filters(live_server, page, painter, make_generation):
    fox = make_generation(painter, prompt="a red fox in the snow")
    whale = make_generation(painter, prompt="a blue whale")
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/gallery/")
    page.fill("input[name=q]", "FOX")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/gallery/?*q=FOX*")
    assert page.locator(f"#gen-{fox.public_id}").count() == 1
    assert page.locator(f"#gen-{whale.public_id}").count() == 0
    shot(page, "studio-03-search")

    page.goto(f"{live_server.url}/gallery/")
    # The card carries its date; the page says how long ago (the card HTML is cached).
    ago = page.locator(f"#gen-{whale.public_id} time[data-ago]")
    assert re.search(r"ago|now", ago.inner_text()), ago.inner_text()
    assert ago.get_attribute("title")  # the date itself, on hover
    star = page.locator(f"#gen-{whale.public_id} button.star")
    star.click()
    page.wait_for_selector(f"#gen-{whale.public_id} button.star[aria-pressed=true]")
    page.reload()  # the star is saved, and the page seen before shows it
    page.wait_for_selector(f"#gen-{whale.public_id} button.star[aria-pressed=true]")
    page.check("#id_starred")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/gallery/?*starred=1*")
    assert page.locator(f"#gen-{whale.public_id}").count() == 1
    assert page.locator(f"#gen-{fox.public_id}").count() == 0
    shot(page, "studio-04-starred")
    axe_check(page, "gallery")
    # Keyboard: the star on the detail page toggles with Enter too.
    page.goto(f"{live_server.url}/gallery/{fox.public_id}/")
    page.focus("button.star")
    page.keyboard.press("Enter")
    page.wait_for_selector("button.star[aria-pressed=true]")
    fox.refresh_from_db()
    assert fox.favorite
    assert not page.csp_errors, page.csp_errors


def test_rerun_makes_a_variant_shown_beside_the_original(
    live_server, page, worker, painter, make_generation
):
    first = make_generation(painter, prompt="a paper boat", seed=5, options={"size": "256x256"})
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/gallery/{first.public_id}/")
    axe_check(page, "detail")
    page.click("button:has-text('Re-run')")
    page.wait_for_url("**/?new=*")
    second = Generation.objects.exclude(pk=first.pk).get()
    assert second.parent_id == first.pk and second.prompt == first.prompt
    page.wait_for_selector(
        f"#gen-{second.public_id}[data-status=completed] img.thumb", timeout=60_000
    )
    page.goto(f"{live_server.url}/gallery/{first.public_id}/")
    page.wait_for_selector(f".variants a[href='/gallery/{second.public_id}/'] img")
    shot(page, "studio-05-variants")
    assert not page.csp_errors, page.csp_errors


def test_an_image_input_model_shows_before_and_after(live_server, page, worker, painter, tmp_path):
    AIModel.objects.create(
        slug="local-room",
        name="Local Room",
        provider="local",
        remote_id="local-room",
        options={"sizes": ["256x256"], "input_image": True, "seed": True, "max_images": 1},
        prompt_template="a {theme} {room}",
        template_choices={"theme": ["Modern", "Vintage"], "room": ["kitchen", "bedroom"]},
    )
    photo = tmp_path / "room.jpg"
    img = Image.new("RGB", (320, 240), (180, 160, 120))
    for x in range(0, 320, 40):
        img.paste((60, 60, 60), (x, 0, x + 8, 240))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    photo.write_bytes(buf.getvalue())

    log_in(page, live_server.url)
    page.select_option("select[name=model]", "local-room")
    assert page.locator("input[name=input_image]").is_visible()
    page.select_option("select[name=tpl_theme]", "Vintage")
    page.select_option("select[name=tpl_room]", "bedroom")
    page.set_input_files("input[name=input_image]", str(photo))
    shot(page, "studio-06-room-form")
    page.click("#generate-form button[type=submit]")
    page.wait_for_url("**/?new=*")
    gen = Generation.objects.get()
    assert gen.prompt == "a Vintage bedroom" and gen.input_image
    page.wait_for_selector(f"#gen-{gen.public_id}[data-status=completed]", timeout=60_000)
    page.goto(f"{live_server.url}/gallery/{gen.public_id}/")
    before = page.locator("img.compare-before")
    before.wait_for()
    assert before.evaluate("el => el.complete && el.naturalWidth") > 0
    assert page.locator("img.compare-after").evaluate("el => el.complete && el.naturalWidth") > 0
    slider = page.locator("input.compare-range")
    slider.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    assert slider.input_value() == "60"
    clip = page.locator(".compare-before-wrap").evaluate("el => el.style.clipPath")
    assert "40%" in clip
    shot(page, "studio-07-before-after")
    axe_check(page, "detail with before/after")
    assert not page.csp_errors, page.csp_errors


def test_the_login_page_passes_the_accessibility_check(live_server, page, db):
    page.goto(f"{live_server.url}/accounts/login/")
    axe_check(page, "login")
    page.set_viewport_size({"width": 375, "height": 740})  # a phone
    shot(page, "studio-08-login-phone")


def test_a_polled_card_that_did_not_change_is_a_304_and_still_updates_when_it_does(
    live_server, page, painter, local_model, monkeypatch
):
    """Chromium sends the card's ETag back on its next poll; the server answers 304 without
    rendering, the browser hands the script the card it holds, and the card still moves as
    soon as the row does."""
    from django.utils import timezone

    from generator import views

    answered = []
    original = views.get_conditional_response

    def counting(request, **kwargs):
        response = original(request, **kwargs)
        answered.append(request.headers.get("If-None-Match") and response is not None)
        return response

    monkeypatch.setattr(views, "get_conditional_response", counting)
    gen = Generation.objects.create(
        user=painter,
        model=local_model,
        provider=local_model.provider,
        prompt="a fox polled while it runs",
        status=Generation.Status.RUNNING,
        started_at=timezone.now(),
        progress=0.2,
        tag_sent=painter.public_id,
    )
    log_in(page, live_server.url)
    card = page.locator(f"#gen-{gen.public_id}")
    card.locator('progress[value="20"]').wait_for()
    for _ in range(60):  # polls come once a second; the second one can be a 304
        if any(answered):
            break
        page.wait_for_timeout(250)
    assert any(answered), answered  # a poll of the unchanged row was answered 304
    Generation.objects.filter(pk=gen.pk).update(progress=0.7)
    card.locator('progress[value="70"]').wait_for(timeout=10_000)
    Generation.objects.get(pk=gen.pk).complete()
    page.locator(f'#gen-{gen.public_id}[data-status="completed"]').wait_for(timeout=10_000)
