"""Issue #18 — retention as people see it: an expired generation's card, detail page, API
item and Re-run; the admin's policy, model field and filter; the environment's defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from generator import retention
from generator.models import AIModel, Generation, RetentionPolicy
from tests import s3server
from tests.test_retention import stored

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
Q = Generation.Status


def test_pages_api_and_rerun_show_an_expired_generation_as_expired(
    s3, owner, owner_client, local_model, make_generation, django_capture_on_commit_callbacks
):
    local_model.retention_days = 7
    local_model.save()
    old = stored(owner, local_model, make_generation, days=9, prompt="an old lighthouse")
    fresh = stored(owner, local_model, make_generation, days=1, prompt="a new lighthouse")
    assert owner_client.get("/gallery/").content.count(b"<img ") == 2  # cached page, 2 images

    with django_capture_on_commit_callbacks(execute=True):
        retention.run()
    old.refresh_from_db()
    when = timezone.localtime(old.images_expired_at).strftime("%-d %b %Y")

    grid = owner_client.get("/gallery/").content.decode()  # the cached page was made anew
    card = re.search(rf'<article[^>]*id="gen-{old.public_id}".*?</article>', grid, re.S)[0]
    assert "Images expired on" in card and when in card and "<img" not in card
    other = re.search(rf'<article[^>]*id="gen-{fresh.public_id}".*?</article>', grid, re.S)[0]
    assert "<img" in other and "expired" not in other

    page = owner_client.get(f"/gallery/{old.public_id}/").content.decode()
    assert "Images expired on" in page and "<img" not in page.split("<section")[0]
    assert f"/gallery/{old.public_id}/download/" not in page
    assert "an old lighthouse" in page  # the prompt stays
    assert owner_client.get(f"/gallery/{old.public_id}/download/0/").status_code == 404

    key = ApiKey.issue(owner, "mine")[1]
    api = owner_client.get(
        f"/api/images/generations?id={old.public_id}", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert api.status_code == 200
    assert api.json()["results"][0]["outputImages"] == []
    listing = owner_client.get("/api/images/generations", HTTP_AUTHORIZATION=f"Bearer {key}")
    items = {item["id"]: item for item in listing.json()["results"]}
    assert items[old.public_id]["outputImages"] == [] and items[fresh.public_id]["outputImages"]

    with django_capture_on_commit_callbacks(execute=True):
        rerun = owner_client.post(f"/gallery/{old.public_id}/rerun/", {"token": "retention-1"})
    assert rerun.status_code == 302
    new = Generation.objects.get(parent=old)
    assert new.prompt == old.prompt and new.status == Q.COMPLETED and new.images.count() == 1


def test_rerun_of_an_expired_photo_generation_says_the_photo_is_gone(
    owner, owner_client, make_generation, django_capture_on_commit_callbacks
):
    room = AIModel.objects.get(slug="room-redesign")  # seeded by a migration
    room.retention_days = 1
    room.save()
    gen = stored(
        owner,
        room,
        make_generation,
        days=3,
        photo=True,
        options={"template": {"theme": "Modern", "room": "Living Room"}},
    )
    with django_capture_on_commit_callbacks(execute=True):
        retention.run()
    answer = owner_client.post(
        f"/gallery/{gen.public_id}/rerun/", {"token": "retention-2"}, follow=True
    )
    assert answer.status_code == 200
    assert "photo this started from was removed" in answer.content.decode()
    assert not Generation.objects.filter(parent=gen).exists()


def test_staff_edit_the_policy_and_a_models_retention_in_the_admin(
    staff, client, local_model, owner, make_generation
):
    client.force_login(staff)
    opened = client.get("/admin/generator/retentionpolicy/")  # the admin index's link
    assert opened.status_code == 302 and opened["Location"].endswith("/retentionpolicy/add/")
    add = client.post("/admin/generator/retentionpolicy/add/", {"keep_days": "30"})
    assert add.status_code == 302 and RetentionPolicy.global_days() == 30
    assert client.get("/admin/generator/retentionpolicy/add/").status_code == 403  # one row
    opened = client.get("/admin/generator/retentionpolicy/")
    assert opened["Location"].endswith("/retentionpolicy/1/change/")
    assert b"EASEL_RETENTION_DAYS" in client.get(opened["Location"]).content
    zero = client.post("/admin/generator/retentionpolicy/1/change/", {"keep_days": "0"})
    assert zero.status_code == 200 and RetentionPolicy.global_days() == 30  # refused

    form = client.get(f"/admin/generator/aimodel/{local_model.pk}/change/")
    assert b'name="retention_days"' in form.content
    gen = make_generation(owner)
    Generation.objects.filter(pk=gen.pk).update(images_expired_at=timezone.now())
    make_generation(owner, prompt="still here")
    listing = client.get("/admin/generator/generation/?images_expired=yes")
    assert listing.status_code == 200
    assert gen.public_id.encode() in listing.content and b"still here" not in listing.content


def _settings(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "from django.conf import settings;"
        "print(json.dumps({'days': settings.EASEL_RETENTION_DAYS,"
        " 'beat': settings.CELERY_BEAT_SCHEDULE['expire-old-images']}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_RETENTION")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )


def test_the_environment_sets_the_default_days_and_the_beat_interval():
    got = _settings(EASEL_RETENTION_DAYS="45", EASEL_RETENTION_INTERVAL="120")
    assert got.returncode == 0, got.stderr
    config = json.loads(got.stdout)
    assert config["days"] == 45 and config["beat"]["schedule"] == 120.0
    assert config["beat"]["task"] == retention.expire_old_images.name
    unset = json.loads(_settings().stdout)
    assert unset["days"] is None and unset["beat"]["schedule"] == 3600.0
    for bad in ({"EASEL_RETENTION_DAYS": "-1"}, {"EASEL_RETENTION_INTERVAL": "0"}):
        refused = _settings(**bad)
        assert refused.returncode != 0 and next(iter(bad)) in refused.stderr
