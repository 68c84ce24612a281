"""Artificial Studio's RoomFix flow (issue 15), over real loopback HTTP against its simulator.

The photo goes up with the files API (`POST /api/files?transient=true`, raw bytes, Content-Type,
X-Filename; github Artificial-Studio/n8n-nodes-artificialstudio `GenericFunctions.ts`) and the
returned url goes into the edit-image tool's `image_urls` (docs.artificialstudio.ai
/image/qwen-image-2-edit). A create-image model takes no image and is refused a photo.
"""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image

from generator.admin import AIModelForm
from generator.models import Generation, UsageEntry
from tests.photo_flow import assert_is_stored_copy, room_jpeg, room_model, submit_room_photo
from tests.simulators.artificialstudio import ArtificialStudioSimulator

pytestmark = pytest.mark.django_db
S = Generation.Status
EDIT = {"tool": "edit-image"}


@pytest.fixture
def sim():
    with ArtificialStudioSimulator(send_webhooks=False) as server:
        yield server


@pytest.fixture
def configured(settings, sim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "artificialstudio": {"api_key": sim.api_key, "base_url": sim.url},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 1.0
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    return settings


def run_photo(client, capture, model, raw=None):
    with capture(execute=True):  # the worker runs (and any retry is sent) after the commit
        gen = submit_room_photo(client, model.slug, raw or room_jpeg())
    gen.refresh_from_db()
    return gen


def test_the_photo_is_uploaded_and_its_url_goes_in_the_edit_tools_image_urls(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model = room_model("artificialstudio", "qwen-image-2-edit", params=EDIT)
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error

    (upload,) = sim.received("POST", r"^/api/files$")
    assert upload.query == {"transient": "true"}
    assert upload.header("authorization") == sim.api_key
    assert upload.header("content-type") == "image/jpeg"
    assert upload.header("x-filename") == gen.input_image.name.rsplit("/", 1)[-1]
    assert_is_stored_copy(upload.body, gen)  # upright, no EXIF, no GPS: Easel's own copy

    (run,) = sim.received("POST", r"^/api/run$")
    (file_id,) = sim.uploads
    assert run.json["tool"] == "edit-image"
    assert run.json["input"]["model"] == "qwen-image-2-edit"
    assert run.json["input"]["prompt"] == "a Modern Living Room"
    (url,) = run.json["input"]["image_urls"]
    assert f"/uploads/{file_id}/" in url
    # What the job worked on is exactly Easel's copy, fetched back through that URL.
    (job,) = sim.jobs.values()
    assert job["_images"] == [upload.body]

    # The result is in Easel's storage: the simulator's edit keeps the photo's (upright) size.
    image = gen.images.get()
    with default_storage.open(image.file.name) as f:
        stored = Image.open(io.BytesIO(f.read()))
    assert stored.size == Image.open(io.BytesIO(upload.body)).size == (32, 64)
    assert image.provider_url == job["output"]


def test_a_named_image_field_goes_as_a_single_url_and_a_wrong_one_is_refused_readably(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # params.image_field names the field; one not ending in `_urls` gets the url as a string
    # (the n8n node's buildRunBody). edit-image has no `image_url`: the strict validation
    # answers 400 naming both fields, and nothing is charged.
    params = {**EDIT, "image_field": "image_url"}
    model = room_model("artificialstudio", "qwen-image-2-edit", params=params)
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    (run,) = sim.received("POST", r"^/api/run$")
    assert isinstance(run.json["input"]["image_url"], str)
    assert run.json["input"]["image_url"].startswith(f"{sim.url}/uploads/")
    assert gen.status == S.FAILED and sim.submissions == 0
    assert "input.image_url: Unrecognized key" in gen.error and "input.image_urls" in gen.error


def test_an_edit_model_refuses_a_field_its_docs_do_not_list(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # qwen-image-2-edit takes no image_size (its docs list model, prompt, image_urls only): the
    # strict validation answers 400 with the field, and nothing is charged.
    model = room_model(
        "artificialstudio",
        "qwen-image-2-edit",
        params={**EDIT, "input": {"image_size": "square_hd"}},
    )
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.FAILED
    assert "input.image_size" in gen.error and sim.submissions == 0


def test_a_create_image_model_never_gets_a_photo_generation(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # Made before the rule existed (the admin now refuses it): the worker still refuses.
    model = room_model("artificialstudio", "flux-schnell")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.FAILED
    assert "create-image tool takes no image" in gen.error
    assert "Nothing was sent to the provider" in gen.error
    assert sim.requests == []  # no upload, no job
    kinds = sorted(UsageEntry.objects.filter(generation=gen).values_list("kind", flat=True))
    assert kinds == ["charge", "refund"]


def form_data(params: str, options: str = '{"input_image": true}') -> dict:
    return {
        "slug": "as-room",
        "name": "AS room",
        "provider": "artificialstudio",
        "remote_id": "flux-schnell",
        "enabled": "on",
        "position": 1,
        "options": options,
        "params": params,
        "tag_with": "public_id",
        "timeout_seconds": 600,
        "template_choices": "{}",
    }


def test_the_admin_and_addmodel_refuse_input_image_for_a_create_image_model():
    form = AIModelForm(data=form_data("{}"))
    assert not form.is_valid()
    assert "create-image tool takes no image" in str(form.non_field_errors())
    assert "edit-image" in str(form.non_field_errors())
    with pytest.raises(CommandError, match="create-image tool takes no image"):
        call_command(
            "addmodel", "as2", "--provider", "artificialstudio", "--remote-id", "flux-schnell",
            "--option", "input_image=true",
        )  # fmt: skip
    # The same model on the edit-image tool is accepted.
    assert AIModelForm(data=form_data('{"tool": "edit-image"}')).is_valid()
    call_command(
        "addmodel", "as3", "--provider", "artificialstudio", "--remote-id", "qwen-image-2-edit",
        "--option", "input_image=true", "--param", "tool=edit-image",
    )  # fmt: skip


def test_the_admin_refuses_the_edit_tool_without_a_photo_and_the_legacy_api_with_one():
    form = AIModelForm(data=form_data('{"tool": "edit-image"}', options="{}"))
    assert not form.is_valid()
    assert "needs an image: turn on the input_image option" in str(form.non_field_errors())
    form = AIModelForm(data=form_data('{"legacy": true}'))
    assert not form.is_valid()
    assert "legacy /api/generate has no documented image input" in str(form.non_field_errors())
