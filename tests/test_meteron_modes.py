"""Meteron's modes (issue 13): sync, as in seed 000 and every current example, is the default and
waits minutes; async is an opt-in; `params.output_images` says which outputImages[] entries are
results (RoomFix's ControlNet model answers [control map, result] and reads entry 1)."""

from __future__ import annotations

import functools
import io

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from generator.models import AIModel, Generation
from generator.providers import get_provider
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(settings):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        yield simulator


def make_model(remote_id="stable-diffusion", **params) -> AIModel:
    return AIModel.objects.create(
        slug="meteron-m",
        name="Meteron model",
        provider="meteron",
        remote_id=remote_id,
        params=params,
    )


@pytest.fixture
def post(post_prompt):
    return functools.partial(post_prompt, model="meteron-m")


def colour_of(data: bytes) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def test_a_model_without_settings_is_sync_and_its_slow_reply_is_waited_for(
    sim, settings, post, owner_client
):
    """Seed 000 / python-example generate.py: X-Async "false", outputImages[0] in the reply.
    The reply takes longer than Easel's poll timeout; a sync read is minutes, so it arrives."""
    settings.EASEL_PROVIDER_TIMEOUT = 0.3
    sim.job_duration = 1.0
    make_model()
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    (request,) = sim.submissions()
    assert request.header("x-async") == "false"
    assert not gen.provider_job_id  # answered at once: nothing was polled
    assert not sim.received("GET", r"^/api/images/generations$")
    (image,) = gen.images.all()
    with image.file.open("rb") as fh:
        assert colour_of(fh.read()) == colour_of(sim.image_bytes(next(iter(sim.generations)), 0))


def test_the_sync_read_is_minutes_cut_to_the_model_and_async_reads_briefly(settings, db):
    settings.EASEL_PROVIDERS = {**settings.EASEL_PROVIDERS, "meteron": {"api_key": "k"}}
    provider = get_provider("meteron")
    sync = Generation(model=make_model(), prompt="x")
    assert provider.submit_timeout(sync).read == 600.0
    sync.model.timeout_seconds = 120
    assert provider.submit_timeout(sync).read == 120.0
    assert provider.submit_timeout(sync).connect <= 10.0
    asynchronous = Generation(model=AIModel(provider="meteron", params={"async": True}), prompt="x")
    assert provider.submit_seconds(asynchronous) == settings.EASEL_PROVIDER_TIMEOUT


def test_output_images_takes_the_result_not_the_control_map(sim, post, owner_client):
    sim.controlnet_models = {"controlnet"}
    make_model("controlnet", output_images=[1])
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    (image,) = gen.images.all()  # one result, though Meteron answered two entries
    (job_id,) = sim.generations
    assert image.provider_url.startswith(f"{sim.url}/r2/{job_id}/1?")
    with image.file.open("rb") as fh:
        stored = colour_of(fh.read())
    assert stored == colour_of(sim.image_bytes(job_id, 1))
    assert stored != colour_of(sim.image_bytes(job_id, 0))


def test_an_output_index_meteron_did_not_return_fails_readably(sim, post, owner_client):
    make_model(output_images=[1])  # a plain model answers one entry
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert "Meteron returned 1 output image(s)" in gen.error and "entry 1" in gen.error
    assert len(sim.submissions()) == 1


def test_without_output_images_every_entry_is_a_result(sim, post, owner_client):
    sim.controlnet_models = {"controlnet"}
    make_model("controlnet")
    post()
    assert Generation.objects.get().images.count() == 2


@pytest.mark.parametrize(
    "param, message",
    [
        ("output_images=[-1]", "params.output_images must list"),
        ("output_images=[1,1]", "params.output_images must list"),
        ('output_images="1"', "params.output_images must list"),
        ('async="yes"', "rests on the older API"),
        ('body=["x"]', "params.body must be a JSON object"),
        ('body={"image": "{image_url}"}', "the model takes no input photo"),
    ],
)
def test_addmodel_refuses_bad_meteron_params(param, message, db):
    with pytest.raises(CommandError, match=message):
        call_command(
            "addmodel", "bad", "--provider", "meteron", "--remote-id", "x", "--param", param
        )
    assert not AIModel.objects.filter(slug="bad").exists()


def test_good_meteron_params_are_accepted(db):
    call_command(
        "addmodel", "good", "--provider", "meteron", "--remote-id", "x",
        "--param", "output_images=[1]", "--param", "async=true",
    )  # fmt: skip
    assert AIModel.objects.get(slug="good").params == {"output_images": [1], "async": True}
