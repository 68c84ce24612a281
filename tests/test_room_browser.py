"""Headless Chromium, a real worker: RoomFix's whole flow on a fresh install (issue 15).

Sign up → pick "Room redesign" → upload a portrait photo → choose theme and room → the result
appears without a reload, its card shows the photo → before/after keeps the photo's 2:3
proportions and the slider moves with the keyboard.
"""

from __future__ import annotations

from importlib import import_module

import pytest
from PIL import Image

from generator.models import AIModel, Generation
from tests.conftest import shot
from tests.mailbox import confirm_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def room_redesign(db):
    """The seeded model (a transactional test starts with the migration's rows flushed)."""
    data = import_module("generator.migrations.0006_seed_room_redesign").ROOM_REDESIGN
    return AIModel.objects.get_or_create(slug=data["slug"], defaults=data)[0]


def test_sign_up_upload_a_room_and_compare_before_and_after(
    live_server, page, start_worker, room_redesign, tmp_path
):
    worker = start_worker(delay=1.0)
    photo = tmp_path / "room.jpg"
    img = Image.new("RGB", (200, 300), (180, 160, 120))  # portrait, 2:3
    for x in range(0, 200, 25):
        img.paste((60, 60, 60), (x, 0, x + 6, 300))
    img.save(photo, format="JPEG")

    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=email]", "roomer@example.com")
    page.fill("input[name=password1]", "a-Long-pass-42")
    page.fill("input[name=password2]", "a-Long-pass-42")
    page.click("form button[type=submit]")
    confirm_in_browser(page, "roomer@example.com", f"{live_server.url}/")

    page.select_option("select[name=model]", "room-redesign")
    assert page.locator("input[name=input_image]").is_visible()
    themes = page.locator("select[name=tpl_theme] option").all_inner_texts()
    assert themes == ["Modern", "Vintage", "Minimalist", "Professional", "Tropical"]
    page.select_option("select[name=tpl_theme]", "Minimalist")
    page.select_option("select[name=tpl_room]", "Gaming Room")
    page.set_input_files("input[name=input_image]", str(photo))
    shot(page, "room-01-form")
    page.click("#generate-form button[type=submit]")
    page.wait_for_url("**/?new=*")
    page.evaluate("window.__noReload = true")
    gen = Generation.objects.get()
    assert gen.prompt == "a Minimalist Gaming Room" and gen.input_image
    card = f"#gen-{gen.public_id}"
    page.wait_for_selector(f"{card}[data-status=completed] img.thumb", timeout=60_000)
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"
    gen.refresh_from_db()
    assert gen.status == "completed", worker.log()
    from_photo = page.locator(f"{card} img.thumb-from")
    from_photo.wait_for()
    assert from_photo.evaluate("el => el.complete && el.naturalWidth") > 0
    shot(page, "room-02-card")

    page.goto(f"{live_server.url}/gallery/{gen.public_id}/")
    before = page.locator("img.compare-before")
    before.wait_for()
    natural = before.evaluate("el => [el.naturalWidth, el.naturalHeight]")
    assert natural == [200, 300]
    # Shown whole, in its own proportions, inside the result's box: not stretched or cropped.
    assert before.evaluate("el => getComputedStyle(el).objectFit") == "contain"
    after = page.locator("img.compare-after")
    assert after.evaluate("el => el.complete && el.naturalWidth") > 0
    slider = page.locator("input.compare-range")
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert slider.input_value() == "45"
    assert "55%" in page.locator(".compare-before-wrap").evaluate("el => el.style.clipPath")
    shot(page, "room-03-before-after")
    assert not page.csp_errors, page.csp_errors
