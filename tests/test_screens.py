"""Issue 16, seen by a newcomer in the browser: the gallery on a phone (390×844) and on a desktop
(1280×900). On a phone the filters are one closed control above the images, opened by the
keyboard and without JavaScript; on a desktop they show at once. Every size: no sideways
scroll on the phone, no Content-Security-Policy refusal, no serious axe-core violation.
Screenshots go to test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import pytest

from generator.models import Generation
from generator.tasks import run_generation
from tests.conftest import make_user, shot
from tests.test_studio_browser import axe_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "pw-Secret-123"


def new_page(browser, size: dict, **context):
    """A page like conftest's `page`, at `size`; a phone is a mobile, touch viewport."""
    if size == PHONE:
        context = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2, **context}
    ctx = browser.new_context(viewport=size, **context)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    pg.csp_errors = []
    pg.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violation: ' + e.violatedDirective));"
    )
    pg.on("console", lambda m: "Content Security Policy" in m.text and pg.csp_errors.append(m.text))
    return pg


@pytest.fixture
def phone(browser):
    pg = new_page(browser, PHONE)
    yield pg
    pg.context.close()


@pytest.fixture
def desktop(browser):
    pg = new_page(browser, DESKTOP)
    yield pg
    pg.context.close()


@pytest.fixture
def painter(django_user_model, make_generation):
    """A user with three finished generations, each with a real image in storage."""
    user = make_user(django_user_model, email="painter@example.com")
    for prompt in ("a red fox in the snow", "a blue whale", "a paper boat"):
        gen = make_generation(
            user, prompt=prompt, status=Generation.Status.QUEUED, options={"size": "256x256"}
        )
        run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == Generation.Status.COMPLETED, gen.error
    return user


def log_in(page, base, email="painter@example.com"):
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways: {scroll} px wide in a {width} px screen"


def first_image_top(page) -> float:
    img = page.locator("#gallery-grid img.thumb").first
    img.wait_for()
    assert img.evaluate("el => el.complete && el.naturalWidth") > 0, "the image did not load"
    return img.bounding_box()["y"]


def test_on_a_phone_the_images_come_first_and_the_filters_open_by_keyboard(
    live_server, phone, painter
):
    log_in(phone, live_server.url)
    phone.goto(f"{live_server.url}/gallery/")
    summary = phone.locator("#gallery-filters > summary")
    assert summary.is_visible()
    assert summary.inner_text().strip() == "Filters"  # nothing active, no count
    assert not phone.locator("#id_q").is_visible()
    assert not phone.locator("form.filters button[type=submit]").is_visible()
    top = first_image_top(phone)
    assert top < PHONE["height"], f"the first image starts at {top} px, below the first screen"
    no_sideways_scroll(phone, PHONE["width"])
    shot(phone, "screens-01-gallery-phone")
    axe_check(phone, "gallery, phone, filters closed")

    summary.focus()
    assert phone.evaluate("document.activeElement.id === 'gallery-filters-toggle'")
    phone.keyboard.press("Enter")
    phone.locator("#id_q").wait_for(state="visible")
    assert phone.locator("#id_starred").is_visible()
    assert phone.locator("#gallery-filters").evaluate("el => el.open")
    no_sideways_scroll(phone, PHONE["width"])
    shot(phone, "screens-02-gallery-phone-filters-open")
    axe_check(phone, "gallery, phone, filters open")

    phone.keyboard.press("Space")  # and closed again
    phone.locator("#id_q").wait_for(state="hidden")
    phone.keyboard.press("Space")
    phone.locator("#id_q").wait_for(state="visible")

    # A search from the opened filters: the result page says how many filters are on.
    phone.fill("#id_q", "fox")
    phone.check("#id_starred")
    phone.locator("#id_q").press("Enter")
    phone.wait_for_url("**/gallery/?*q=fox*")
    assert summary.inner_text().strip() == "Filters (2 active)"
    assert not phone.locator("#id_q").is_visible()
    assert not phone.csp_errors, phone.csp_errors


def test_on_a_phone_the_filters_open_without_javascript(live_server, browser, painter):
    page = new_page(browser, PHONE, java_script_enabled=False)
    try:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/gallery/?model=local-sketch&status=completed")
        summary = page.locator("#gallery-filters > summary")
        assert summary.inner_text().strip() == "Filters (2 active)"
        assert not page.locator("#id_model").is_visible()
        assert first_image_top(page) < PHONE["height"]
        summary.focus()
        page.keyboard.press("Enter")
        page.locator("#id_model").wait_for(state="visible")
        assert page.locator("#id_model").input_value() == "local-sketch"
        assert page.locator("#id_status").input_value() == "completed"
        shot(page, "screens-03-gallery-phone-no-js")
    finally:
        page.context.close()


def test_on_a_desktop_the_filters_show_at_once(live_server, desktop, painter):
    log_in(desktop, live_server.url)
    desktop.goto(f"{live_server.url}/gallery/?q=fox")
    for field in ("#id_q", "#id_model", "#id_status", "#id_from", "#id_sort", "#id_starred"):
        assert desktop.locator(field).is_visible(), field
    assert desktop.locator("#id_q").input_value() == "fox"
    # The summary is not needed here; the fields are reachable by the keyboard at once.
    assert not desktop.locator("#gallery-filters > summary").is_visible()
    desktop.locator("#id_q").focus()
    desktop.keyboard.press("Tab")
    assert desktop.evaluate("document.activeElement.id") == "id_model"
    assert first_image_top(desktop) < DESKTOP["height"]
    no_sideways_scroll(desktop, DESKTOP["width"])
    shot(desktop, "screens-04-gallery-desktop")
    axe_check(desktop, "gallery, desktop")
    assert not desktop.csp_errors, desktop.csp_errors


def test_a_phone_turned_wide_shows_the_filters_and_narrow_again_hides_them(
    live_server, phone, painter
):
    """The same HTML serves every width (the gallery page is cached): CSS alone decides."""
    log_in(phone, live_server.url)
    phone.goto(f"{live_server.url}/gallery/")
    assert not phone.locator("#id_q").is_visible()
    phone.set_viewport_size({"width": 844, "height": 390})  # landscape
    assert phone.locator("#id_q").is_visible()
    no_sideways_scroll(phone, 844)
    phone.set_viewport_size(PHONE)
    assert not phone.locator("#id_q").is_visible()
