"""RoomFix photo (issue 15) on OpenAI-style providers, over loopback HTTP against the simulator.

A photo generation on OpenAI goes to `POST /v1/images/edits` as multipart/form-data with Easel's
stored copy in the `image` part (openai-openapi createImageEdit); its reply is handled like a
generation's. dall-e-3 cannot edit and AI Refinery has no image input: both are refused before
anything is sent.
"""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from PIL import Image

from generator.admin import AIModelForm
from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from generator.tasks import run_generation
from tests.photo_flow import (
    assert_is_stored_copy,
    room_jpeg,
    room_model,
    stored_photo,
    submit_room_photo,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("openai_configured")]
S = Generation.Status


def run_photo(client, capture, model: AIModel, raw: bytes | None = None) -> Generation:
    with capture(execute=True):
        gen = submit_room_photo(client, model.slug, raw or room_jpeg())
    gen.refresh_from_db()
    return gen


def test_a_room_photo_reaches_openai_edits_as_the_stored_copy_and_completes(
    owner_client, owner, openai_sim, django_capture_on_commit_callbacks
):
    model = room_model("openai", "gpt-image-1", params={"quality": "high"})
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    assert openai_sim.received("POST", "/v1/images/generations") == []
    (call,) = openai_sim.received("POST", "/v1/images/edits")
    assert call.header("authorization") == f"Bearer {openai_sim.api_key}"
    assert call.header("content-type").startswith("multipart/form-data; boundary=")
    (edit,) = openai_sim.edits
    assert edit["fields"] == {
        "prompt": gen.prompt,
        "model": "gpt-image-1",
        "n": "1",
        "user": owner.public_id,
        "quality": "high",
    }
    ((filename, content_type, data),) = edit["files"]["image"]
    assert_is_stored_copy(data, gen)
    assert content_type == "image/jpeg" and filename == gen.input_image.name.rsplit("/", 1)[-1]
    # The result is in Easel's storage (the simulator sent b64_json), not at the provider.
    image = gen.images.get()
    assert image.provider_url == ""
    with image.file.open("rb") as handle:
        assert Image.open(handle).format == "PNG"


def test_dall_e_2_takes_a_square_png_through_edits_and_its_url_reply(
    owner_client, openai_sim, django_capture_on_commit_callbacks
):
    model = room_model("openai", "dall-e-2", params={"response_format": "url"})
    square = io.BytesIO()
    Image.new("RGBA", (48, 48), (10, 200, 10, 255)).save(square, format="PNG")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model, square.getvalue())
    assert gen.status == S.COMPLETED, gen.error
    ((_name, content_type, data),) = openai_sim.edits[0]["files"]["image"]
    assert data == stored_photo(gen) and content_type == "image/png"
    assert openai_sim.edits[0]["fields"]["response_format"] == "url"
    assert gen.images.get().provider_url.startswith(openai_sim.url + "/files/")


def test_dall_e_2_is_not_sent_a_photo_it_is_documented_to_refuse(
    owner_client, openai_sim, django_capture_on_commit_callbacks
):
    # "For dall-e-2 ... one image ... a square png file less than 4MB" (CreateImageEditRequest)
    gen = run_photo(
        owner_client, django_capture_on_commit_callbacks, room_model("openai", "dall-e-2")
    )
    assert gen.status == S.FAILED
    assert "dall-e-2 edits only take a square PNG" in gen.error and "32×64 JPEG" in gen.error
    assert "Nothing was sent to OpenAI" in gen.error
    assert openai_sim.received("POST") == []
    assert UsageEntry.objects.filter(generation=gen, kind=UsageEntry.Kind.REFUND).exists()


@pytest.mark.parametrize(
    "provider, remote_id, words",
    [
        ("openai", "dall-e-3", "dall-e-3 cannot edit an image; use gpt-image-1 or dall-e-2."),
        (
            "airefinery",
            "black-forest-labs/FLUX.1-schnell",
            "AI Refinery cannot take an input photo: its image API only generates",
        ),
    ],
)
def test_a_model_that_cannot_edit_is_refused_and_never_sent_the_photo(
    owner_client,
    openai_sim,
    air_sim,
    django_capture_on_commit_callbacks,
    provider,
    remote_id,
    words,
):
    gen = run_photo(
        owner_client, django_capture_on_commit_callbacks, room_model(provider, remote_id)
    )
    assert gen.status == S.FAILED
    assert words in gen.error and "Nothing was sent to the provider" in gen.error
    assert openai_sim.received("POST") == [] and air_sim.received("POST") == []
    kinds = sorted(UsageEntry.objects.filter(generation=gen).values_list("kind", flat=True))
    assert kinds == ["charge", "refund"]


def test_photo_problem_says_which_models_edit_and_the_admin_refuses_the_others():
    openai, air = get_provider("openai"), get_provider("airefinery")
    for remote_id in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "dall-e-2"):
        assert openai.photo_problem(AIModel(provider="openai", remote_id=remote_id)) == ""
    # An id Easel has no rules for (a compatible server's own name) is tried; its server decides.
    assert openai.photo_problem(AIModel(provider="openai", remote_id="my-local-sdxl")) == ""
    assert "segmentation endpoint returns masks" in air.photo_problem(AIModel(remote_id="x"))
    form = AIModelForm(
        data={
            "slug": "d3",
            "name": "D3",
            "provider": "openai",
            "remote_id": "dall-e-3",
            "enabled": "on",
            "position": 1,
            "options": '{"input_image": true, "max_images": 1}',
            "params": "{}",
            "tag_with": "public_id",
            "timeout_seconds": 600,
            "template_choices": "{}",
        }
    )
    assert not form.is_valid()
    assert "dall-e-3 cannot edit an image" in str(form.non_field_errors())
    with pytest.raises(CommandError, match="AI Refinery cannot take an input photo"):
        call_command(
            "addmodel", "air-room", "--provider", "airefinery", "--remote-id", "flux",
            "--option", "input_image=true",
        )  # fmt: skip


@pytest.fixture
def photo_gen(owner, make_generation):
    """A queued gpt-image-1 photo generation, charged, with Easel's copy in storage."""

    def make(**params):
        # room_model's slug is fixed: an earlier model of this test steps aside.
        AIModel.objects.filter(slug="openai-room").update(slug=f"old-{AIModel.objects.count()}")
        model = room_model("openai", "gpt-image-1", params=params)
        gen = make_generation(owner, model=model, status=S.QUEUED, options={})
        gen.input_image.save("room.jpg", ContentFile(room_jpeg()), save=True)
        UsageEntry.objects.charge(gen)
        return gen

    return make


def run(gen, capture) -> Generation:
    with capture(execute=True):  # a requeue would be dispatched here
        run_generation(gen.pk)
    gen.refresh_from_db()
    return gen


def test_an_edit_out_of_quota_is_final_and_says_so(
    openai_sim, photo_gen, django_capture_on_commit_callbacks
):
    openai_sim.out_of_quota = True
    gen = run(photo_gen(), django_capture_on_commit_callbacks)
    assert gen.status == S.FAILED
    assert "the provider account is out of credit" in gen.error
    assert len(openai_sim.received("POST", "/v1/images/edits")) == 1  # final: not retried
    assert UsageEntry.objects.filter(generation=gen, kind=UsageEntry.Kind.REFUND).exists()


def test_an_edit_refusal_and_an_unreadable_edit_reply_are_handled_as_for_generations(
    openai_sim, photo_gen, django_capture_on_commit_callbacks
):
    refused = photo_gen(response_format="b64_json")  # GPT image models take no response_format
    refused = run(refused, django_capture_on_commit_callbacks)
    assert refused.status == S.FAILED
    assert "Unknown parameter: 'response_format'" in refused.error
    assert "field: response_format" in refused.error
    assert len(openai_sim.received("POST", "/v1/images/edits")) == 1 and openai_sim.edits == []
    # A 200 means OpenAI made (and billed) the images: unreadable, it is final, never re-sent.
    openai_sim.faults.set(malformed_json=True, times=1, only=r"/v1/images/edits")
    lost = run(photo_gen(), django_capture_on_commit_callbacks)
    assert lost.status == S.FAILED
    assert "OpenAI accepted the request" in lost.error and "not sent again" in lost.error
    assert len(openai_sim.received("POST", "/v1/images/edits")) == 2 and lost.attempts == 1


def test_an_edit_whose_reply_is_lost_fails_once_and_is_never_sent_again(
    openai_sim, photo_gen, django_capture_on_commit_callbacks
):
    openai_sim.faults.set(hang=1.5, only=r"/v1/images/edits")
    gen = photo_gen()
    AIModel.objects.filter(pk=gen.model_id).update(timeout_seconds=1)
    gen = run(gen, django_capture_on_commit_callbacks)
    assert gen.status == S.FAILED, gen.error
    assert "OpenAI did not answer within 1 s; it may still have run" in gen.error
    assert len(openai_sim.received("POST", "/v1/images/edits")) == 1
    assert UsageEntry.objects.filter(generation=gen, kind=UsageEntry.Kind.REFUND).exists()
