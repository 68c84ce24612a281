"""The input photo's way to a provider (issue 15): what every adapter builds on.

A provider that cannot send the photo is refused for photo models in the admin and by
`addmodel`, and a generation with a photo is never sent to it (it would run text-only and be
shown as the redesign). The photo a provider gets is Easel's stored copy; a URL of it is
presigned only on S3 and never outlives the generation. A long synchronous call stretches the
worker's lease so the reaper does not take it for a dead worker.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from generator import providers
from generator.admin import AIModelForm
from generator.models import Generation, UsageEntry
from generator.providers import photos
from generator.providers.base import Done, HttpProvider, ImageOutput
from generator.providers.local import render
from tests import s3server
from tests.photo_flow import assert_is_stored_copy, room_jpeg, room_model, submit_room_photo

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
S = Generation.Status


class TextOnlyProvider(HttpProvider):
    """Test equipment: a hosted provider with no image input that would happily render text."""

    name = "textonly"
    label = "Text Only"
    sync_read_timeout = 600.0
    seen: list[dict] = []

    def is_configured(self) -> bool:
        return True

    def submit(self, gen):
        lease = Generation.objects.values_list("lease_until", flat=True).get(pk=gen.pk)
        TextOnlyProvider.seen.append({"lease_until": lease, "photo": photos.input_photo(gen)})
        return Done([ImageOutput(data=render(gen.prompt, 1, (64, 64)), content_type="image/png")])


class PhotoProvider(TextOnlyProvider):
    name = "photoprov"
    label = "Photo Provider"

    def photo_problem(self, model) -> str:
        return ""


@pytest.fixture(autouse=True)
def _providers():
    TextOnlyProvider.seen = []
    providers.register(TextOnlyProvider)
    providers.register(PhotoProvider)
    yield
    providers.unregister(TextOnlyProvider.name)
    providers.unregister(PhotoProvider.name)


def test_a_photo_generation_is_never_sent_to_a_provider_that_would_drop_the_photo(
    owner_client, django_capture_on_commit_callbacks
):
    model = room_model("textonly", "t1")
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, model.slug)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "Text Only cannot take an input photo" in gen.error
    assert "Nothing was sent to the provider" in gen.error
    assert TextOnlyProvider.seen == []  # submit() never ran
    kinds = list(UsageEntry.objects.filter(generation=gen).values_list("kind", flat=True))
    assert sorted(kinds) == ["charge", "refund"]  # nothing kept for work never sent


def test_the_admin_and_addmodel_refuse_input_image_for_such_a_provider():
    form = AIModelForm(
        data={
            "slug": "r",
            "name": "R",
            "provider": "textonly",
            "remote_id": "x",
            "enabled": "on",
            "position": 1,
            "options": '{"input_image": true}',
            "params": "{}",
            "tag_with": "public_id",
            "timeout_seconds": 600,
            "template_choices": "{}",
        }
    )
    assert not form.is_valid()
    assert "Text Only cannot take an input photo" in str(form.non_field_errors())
    with pytest.raises(CommandError, match="cannot take an input photo"):
        call_command(
            "addmodel", "r2", "--provider", "textonly", "--remote-id", "x",
            "--option", "input_image=true",
        )  # fmt: skip
    call_command(
        "addmodel", "r3", "--provider", "photoprov", "--remote-id", "x",
        "--option", "input_image=true",
    )  # fmt: skip


def test_the_provider_gets_the_stored_upright_copy_and_the_lease_covers_the_call(
    owner_client, django_capture_on_commit_callbacks
):
    model = room_model("photoprov", "p1")
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, model.slug, room_jpeg())
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (seen,) = PhotoProvider.seen
    assert_is_stored_copy(seen["photo"].data, gen)
    assert seen["photo"].content_type == "image/jpeg"
    # The SDK-length read (600 s, under the model's 600 s) plus a margin, not the 120 s lease.
    assert seen["lease_until"] >= before + timedelta(seconds=600)


def test_no_url_of_the_photo_on_local_disk(owner, make_generation, settings):
    settings.STORAGE_BACKEND = "local"
    gen = make_generation(owner, status=S.RUNNING, started_at=timezone.now())
    gen.input_image = "inputs/x.jpg"
    assert photos.input_photo_url(gen) is None


def test_a_presigned_photo_url_serves_the_copy_and_never_outlives_the_generation(
    s3, owner, owner_client, django_capture_on_commit_callbacks, settings
):
    model = room_model("photoprov", "p1")
    model.timeout_seconds = 300
    model.save()
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, model.slug)
    gen.refresh_from_db()
    assert gen.input_image.name in s3.keys()
    url = photos.input_photo_url(gen)
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    left = gen.started_at.timestamp() + 300 - time.time()
    assert expires <= left + 1 and expires < settings.EASEL_INPUT_URL_SECONDS
    assert_is_stored_copy(httpx.get(url).content, gen)
    # Long-running generation: the setting is the cap.
    settings.EASEL_INPUT_URL_SECONDS = 120
    assert int(parse_qs(urlsplit(photos.input_photo_url(gen)).query)["X-Amz-Expires"][0]) == 120
