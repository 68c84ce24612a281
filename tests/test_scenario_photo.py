"""Scenario, issue 15 (RoomFix): the photo is uploaded as a Scenario asset and its id goes in the
model's image input — through the web form, against the Scenario simulator over loopback HTTP."""

from __future__ import annotations

import pytest

from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from generator.providers.photos import InputPhoto
from generator.providers.scenario import ASSET_UPLOAD_MAX_BYTES
from tests.photo_flow import assert_is_stored_copy, room_jpeg, room_model, submit_room_photo
from tests.simulators.scenario import API_KEY, API_SECRET, ScenarioSimulator

pytestmark = pytest.mark.django_db
S = Generation.Status


@pytest.fixture
def sim(settings):
    with ScenarioSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "scenario": {"api_key": API_KEY, "api_secret": API_SECRET, "base_url": simulator.url},
        }
        settings.EASEL_MAX_TRANSIENT_RETRIES = 3
        settings.EASEL_PROVIDER_TIMEOUT = 0.5
        yield simulator


@pytest.fixture
def send(owner_client, django_capture_on_commit_callbacks):
    def send(model, raw=None):
        with django_capture_on_commit_callbacks(execute=True):
            gen = submit_room_photo(owner_client, model.slug, raw or room_jpeg())
        gen.refresh_from_db()
        return gen

    return send


def uploads(sim):
    return sim.received("POST", r"^/assets$")


def test_the_room_photo_goes_up_as_an_asset_and_the_generation_names_it(sim, send):
    model = room_model("scenario", "model_sim-kontext")
    assert get_provider("scenario").photo_problem(model) == ""
    gen = send(model)
    assert gen.status == S.COMPLETED, gen.error
    ((asset_id, received),) = sim.uploads.items()
    assert_is_stored_copy(received, gen)  # upright, EXIF and GPS gone: Easel's own copy
    (upload,) = uploads(sim)
    assert upload.json["name"] == gen.input_image.name.rsplit("/", 1)[-1]
    assert upload.json["image"].startswith("data:image/jpeg;base64,")
    (request,) = sim.submissions()
    assert request.json["image"] == asset_id
    assert request.json["prompt"] == "a Modern Living Room"  # the RoomFix template
    assert gen.provider_state["input_asset"] == asset_id
    (image,) = gen.images.all()
    with image.file.open("rb") as handle:  # the result sits in Easel's storage
        assert handle.read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/signed/asset_sim" in image.provider_url


def test_a_model_whose_image_input_has_another_name_gets_the_asset_there(sim, send):
    sim.models["model_sim-kontext"][-1]["name"] = "referenceImage"
    model = room_model("scenario", "model_sim-kontext", params={"image_field": "referenceImage"})
    gen = send(model)
    assert gen.status == S.COMPLETED, gen.error
    (asset_id,) = sim.uploads
    body = sim.submissions()[0].json
    assert body["referenceImage"] == asset_id and "image" not in body


def test_a_generate_naming_an_asset_that_was_never_uploaded_is_refused(sim, post_prompt):
    """The simulator's side of the contract: file inputs must name an asset of the project."""
    AIModel.objects.create(
        slug="kontext", name="Kontext", provider="scenario", remote_id="model_sim-kontext",
        params={"body": {"image": "asset_nope"}},
    )  # fmt: skip
    post_prompt(model="kontext")
    gen = Generation.objects.get()
    assert gen.status == S.FAILED
    assert "Invalid input: 'image': asset asset_nope not found" in gen.error
    assert len(sim.submissions()) == 1 and not sim.jobs


def test_an_upload_whose_reply_was_lost_is_tried_again_and_nothing_is_generated_twice(sim, send):
    """Uploading costs no compute units and no image was asked for yet: safe to send again."""
    sim.faults.set(reset=True, times=1, only=r"^/assets$")
    gen = send(room_model("scenario", "model_sim-kontext"))
    assert gen.status == S.COMPLETED, gen.error
    assert len(uploads(sim)) == 2 and len(sim.submissions()) == 1 and len(sim.jobs) == 1
    (request,) = sim.submissions()
    assert request.json["image"] in sim.uploads
    assert_is_stored_copy(sim.uploads[request.json["image"]], gen)


def test_a_generate_whose_reply_was_lost_after_the_upload_is_never_sent_again(sim, send):
    sim.faults.set(hang=1.0, times=1, only=r"^/generate/")
    gen = send(room_model("scenario", "model_sim-kontext"))
    assert gen.status == S.FAILED
    assert "not sent again so you are not charged twice" in gen.error
    assert len(uploads(sim)) == 1 and len(sim.submissions()) == 1
    assert gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


def test_a_refused_upload_fails_readably_without_a_generate(sim, send):
    sim.faults.set(status=400)  # e.g. a format Scenario does not take
    gen = send(room_model("scenario", "model_sim-kontext"))
    assert gen.status == S.FAILED
    assert gen.error.startswith("Scenario refused the request (400)")
    assert len(uploads(sim)) == 1 and not sim.submissions()


def test_a_photo_too_big_for_the_asset_upload_is_refused_before_sending(sim):
    photo = InputPhoto(data=b"\xff" * ASSET_UPLOAD_MAX_BYTES, content_type="image/png", name="x")
    with pytest.raises(Exception, match="takes images under 6 MB. Nothing was sent"):
        get_provider("scenario").upload_photo(photo)
    assert sim.requests == []


def test_the_admin_refuses_a_photo_model_with_no_image_input_name(db):
    model = room_model("scenario", "model_sim-kontext", params={"image_field": ""})
    (problem,) = get_provider("scenario").model_errors(model)
    assert "name of the model's image input" in problem
