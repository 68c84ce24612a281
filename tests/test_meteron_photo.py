"""RoomFix on Meteron (issue 15): the photo goes as the presigned URL of Easel's stored copy, put
where the body template's "{image_url}" says (RoomFix: {"version": …, "input": {"image": url,
"prompt": …}}); the model server fetches it; the result is outputImages[1], not the control map.
On local disk there is no URL Meteron could fetch, so photo models are refused for Meteron."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from generator.admin import AIModelForm
from generator.models import Generation
from tests import s3server
from tests.photo_flow import assert_is_stored_copy, room_jpeg, room_model, submit_room_photo
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
VERSION = "854e8727697a057c525cdb45ab037f64ecca770a1769cc52287c2e56472a247b"  # RoomFix's
ROOMFIX = {
    "body": {"version": VERSION, "input": {"image": "{image_url}", "scale": 9}},
    "body_key": "input",
    "output_images": [1],
}


@pytest.fixture
def sim(settings):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        simulator.controlnet_models = {"roomfix"}
        yield simulator


def colour(data: bytes) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def test_the_model_server_fetches_easels_copy_and_the_result_is_entry_1(
    s3, sim, owner_client, django_capture_on_commit_callbacks
):
    model = room_model("meteron", "roomfix", params=ROOMFIX)
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, model.slug, room_jpeg())
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    (request,) = sim.submissions()
    body = request.json
    assert body["version"] == VERSION and body["input"]["scale"] == 9
    assert body["input"]["prompt"] == "a Modern Living Room"
    assert body["input"]["image"].startswith(s3.endpoint + "/")  # a presigned S3 URL
    assert "X-Amz-Signature=" in body["input"]["image"]
    (fetched,) = sim.photos  # fetched over HTTP by the model server, byte for byte Easel's copy
    assert_is_stored_copy(fetched, gen)
    (job_id,) = sim.generations
    (image,) = gen.images.all()
    with image.file.open("rb") as fh:
        stored = colour(fh.read())
    assert stored == colour(sim.image_bytes(job_id, 1))
    assert stored != colour(sim.image_bytes(job_id, 0))  # not the control map


def form(**overrides) -> AIModelForm:
    data = {
        "slug": "room",
        "name": "Room",
        "provider": "meteron",
        "remote_id": "roomfix",
        "enabled": "on",
        "position": 1,
        "options": '{"input_image": true}',
        "params": '{"body": {"input": {"image": "{image_url}"}}, "body_key": "input"}',
        "tag_with": "public_id",
        "timeout_seconds": 600,
        "template_choices": "{}",
        **overrides,
    }
    return AIModelForm(data=data)


def test_on_local_disk_the_admin_and_addmodel_refuse_a_photo_model_for_meteron(settings):
    settings.STORAGE_BACKEND = "local"
    bound = form()
    assert not bound.is_valid()
    message = "Meteron fetches the photo by URL; Easel's storage is local disk"
    assert message in " ".join(bound.non_field_errors())
    assert "set STORAGE_BACKEND=s3" in " ".join(bound.non_field_errors())
    with pytest.raises(CommandError, match="which Meteron cannot reach: set STORAGE_BACKEND=s3"):
        call_command(
            "addmodel", "room2", "--provider", "meteron", "--remote-id", "roomfix",
            "--option", "input_image=true",
            "--param", 'body={"input": {"image": "{image_url}"}}',
        )  # fmt: skip


def test_on_s3_a_photo_model_needs_the_placeholder_and_is_then_accepted(settings):
    settings.STORAGE_BACKEND = "s3"
    missing = form(params='{"body": {"input": {"scale": 9}}}')
    assert not missing.is_valid()
    assert 'put the string "{image_url}" where the photo goes' in " ".join(
        missing.non_field_errors()
    )
    assert form().is_valid(), form().errors


def test_a_photo_generation_on_local_disk_is_never_sent(
    sim, settings, owner_client, django_capture_on_commit_callbacks
):
    settings.STORAGE_BACKEND = "local"
    model = room_model("meteron", "roomfix", params=ROOMFIX)
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, model.slug, room_jpeg())
    gen.refresh_from_db()
    assert gen.status == Generation.Status.FAILED
    assert "Meteron cannot reach" in gen.error and "Nothing was sent" in gen.error
    assert sim.submissions() == [] and sim.photos == []
