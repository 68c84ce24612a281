"""Headless Chromium, a live server and a real Celery worker (issue #18): the owner presses
"Download these as ZIP" on a filtered gallery, watches the progress bar fill without a reload,
and the download link that appears gives a ZIP holding exactly that view's images."""

from __future__ import annotations

import json
import zipfile

import pytest
from django.conf import settings
from django.test import Client

from generator.models import Export, Generation
from tests.conftest import make_user, seeded_model, shot
from tests.procs import Worker
from tests.test_export import make_history
from tests.test_studio_browser import axe_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WANTED = 150


def test_the_owner_exports_a_filtered_gallery_and_downloads_the_zip(
    live_server, page, start_worker, local_model, django_user_model, tmp_path
):
    # The worker starts only once the page shows the export queued, so the bar is seen to
    # move by the page's script (start_worker's set-up: PostgreSQL, Redis, no eager tasks).
    worker = Worker(tmp_path / "export-worker.log")
    worker.purge()
    owner = make_user(django_user_model, email="exporter@example.com")
    make_history(owner, local_model, WANTED)
    make_history(owner, seeded_model("local-wide"), 30, start=WANTED)  # not in the view
    make_history(owner, local_model, 5, start=200, status=Generation.Status.FAILED, images=False)
    client = Client()
    client.force_login(owner)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])

    page.goto(f"{live_server.url}/gallery/?model=local-sketch&status=completed")
    assert page.url.startswith(f"{live_server.url}/gallery/"), page.url  # signed in
    page.locator("#gallery-grid").wait_for()
    page.get_by_role("button", name="Download these as ZIP").click()
    page.wait_for_url(f"{live_server.url}/gallery/exports/*/")
    export = Export.objects.get(user=owner)
    assert export.total == WANTED
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    bar = page.locator("progress#export-progress")
    assert bar.get_attribute("max") == str(WANTED) and bar.get_attribute("value") == "0"
    assert page.locator("#export-status").inner_text() == "Queued"
    assert page.locator("#export-download").is_hidden()

    worker.start()
    try:
        page.wait_for_function(
            "n => { const p = document.getElementById('export-progress');"
            " return p.max === n && p.value === n; }",
            arg=WANTED,
            timeout=120_000,
        )
    finally:
        worker.stop()
    link = page.get_by_role("link", name="Download the ZIP")
    link.wait_for(state="visible")
    assert page.locator("#export-status").inner_text() == "Completed"
    assert page.evaluate("window.sameDocument") is True  # the script moved it, not a reload
    shot(page, "export-completed")
    axe_check(page, "export page")

    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as zf:
        images = [n for n in zf.namelist() if n.startswith("images/")]
        meta = json.loads(zf.read("metadata.json"))
    assert len(images) == WANTED and len(meta) == WANTED
    assert {m["model"] for m in meta} == {"local-sketch"}
    assert {m["status"] for m in meta} == {"completed"}
    assert not page.csp_errors
