"""Headless Chromium: sign up → prompt → the finished image appears in the gallery."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from generator.models import Generation
from tests.conftest import require, uses_postgres
from tests.procs import Worker, redis_available

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.fixture
def browser():
    require(shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM), "needs /usr/bin/chromium")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


@pytest.fixture
def worker(tmp_path, settings):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    from config.celery import app

    app.conf.task_always_eager = False
    settings.EASEL_LOCAL_PROVIDER_DELAY = 0.5
    w = Worker(tmp_path / "worker.log")
    w.purge()
    w.start()
    yield w
    w.stop()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_up_prompt_and_see_the_image_in_the_gallery(live_server, page, worker, local_model):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # anonymous → log in
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=email]", "painter@example.com")
    page.fill("input[name=password1]", "a-Long-pass-42")
    page.fill("input[name=password2]", "a-Long-pass-42")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

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
