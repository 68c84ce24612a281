"""Contract tests: the Meteron adapter against the Meteron simulator over real HTTP on loopback."""

from __future__ import annotations

import base64
import functools
import json

import pytest
from django.urls import reverse

from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from generator.providers.base import Done, LimitReached, Pending, ProviderError
from generator.providers.meteron import MeteronProvider
from tests.conftest import drive_checks
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(settings):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        settings.EASEL_MAX_TRANSIENT_RETRIES = 3
        yield simulator


def make_model(**params) -> AIModel:
    return AIModel.objects.create(
        slug="meteron-sd",
        name="Stable Diffusion (Meteron)",
        provider="meteron",
        remote_id="stable-diffusion",
        options={"sizes": ["512x512", "768x768"], "max_images": 2, "negative_prompt": True},
        params=params,
    )


@pytest.fixture
def sync_model(db):
    return make_model()  # sync is the default (seed 000, PROTOCOLS Corrections)


@pytest.fixture
def async_model(db):
    return make_model(**{"async": True})


@pytest.fixture
def post(post_prompt):
    return functools.partial(post_prompt, model="meteron-sd", size="512x512")


@pytest.fixture
def scheduled(scheduled_checks):
    return scheduled_checks


def drive(calls, timeout=10.0):
    drive_checks(calls, timeout)


def test_a_form_generation_completes_lands_in_the_gallery_and_carries_the_user_tag(
    sim, post, owner_client, owner, sync_model
):
    response = post(negative_prompt="fog", num_images="2", seed="42")
    assert response.status_code == 302
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    # What Meteron received: the user's public id as X-User, model, sync mode, the body.
    (request,) = sim.submissions()
    assert request.header("x-user") == owner.public_id
    assert request.header("x-model") == "stable-diffusion"
    assert request.header("x-async") == "false"
    assert request.header("x-priority") == owner.priority
    assert request.header("authorization") == f"Bearer {API_KEY}"
    assert request.json == {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "fog",
        "seed": 42,
        "width": 512,
        "height": 512,
        "num_outputs": 2,
    }
    assert gen.tag_sent == owner.public_id
    # Copied into Easel's storage, the provider URL kept only as a record.
    images = list(gen.images.order_by("index"))
    assert len(images) == 2
    for image in images:
        assert image.provider_url.startswith(sim.url + "/r2/")
        with image.file.open("rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    page = owner_client.get("/gallery/").content.decode()
    thumb = reverse("gallery:image_file", args=[gen.public_id, 0, "thumb"])
    assert thumb in page
    sim.expire_urls = True  # the provider's copy is gone; Easel's is served
    original = owner_client.get(reverse("gallery:image_file", args=[gen.public_id, 0, "original"]))
    assert original.status_code == 200
    assert b"".join(original.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_async_mode_submits_once_then_polls_the_listing_by_id(
    sim, post, owner_client, owner, async_model, scheduled
):
    sim.job_duration = 0.6
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.RUNNING
    assert gen.provider_job_id.startswith("img_")
    drive(scheduled)
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert gen.images.count() == 1
    assert len(sim.submissions()) == 1
    assert sim.submissions()[0].header("x-async") == "true"
    polls = sim.received("GET", r"^/api/images/generations$")
    assert polls and all(p.query.get("id") == gen.provider_job_id for p in polls)


def test_an_async_failure_shows_meteron_s_reason(sim, post, owner_client, async_model, scheduled):
    sim.job_duration = 0.3
    sim.fail_reason = "CUDA out of memory"
    post()
    drive(scheduled)
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error == "Meteron: CUDA out of memory"


def test_outputs_that_are_json_with_a_data_uri_are_unwrapped(sim, post, owner_client, sync_model):
    sim.output_mode = "json"
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert gen.images.get().content_type == "image/png"


def test_a_body_template_and_body_key_shape_the_request(sim, post, owner_client, db):
    make_model(
        **{
            "async": False,
            "body": {"version": "854e87", "input": {"scale": 9}},
            "body_key": "input",
        }
    )
    post()
    assert Generation.objects.get().status == Generation.Status.COMPLETED
    body = sim.submissions()[0].json
    assert body["version"] == "854e87"
    assert body["input"]["scale"] == 9 and body["input"]["prompt"] == "a lighthouse at dusk"


def test_a_used_up_limit_fails_as_limit_reached_without_retrying(
    sim, post, owner_client, owner, sync_model
):
    sim.daily_limit, sim.monthly_limit = 1, 10
    post()
    post(prompt="second")
    first, second = Generation.objects.order_by("created_at")
    assert first.status == Generation.Status.COMPLETED
    assert second.status == Generation.Status.FAILED
    assert second.error == "Limit reached at the provider."
    assert len(sim.submissions()) == 2  # refused once, never retried
    provider = get_provider("meteron")
    assert provider.remaining(owner.public_id, "stable-diffusion") == {
        "remaining": 0,
        "remainingThisMonth": 9,
    }


def test_remaining_reports_the_provider_figures_or_none(sim, owner, sync_model):
    provider = get_provider("meteron")
    assert provider.remaining(owner.public_id, "stable-diffusion") is None  # no limits set
    sim.daily_limit, sim.monthly_limit = 5, 50
    assert provider.remaining(owner.public_id, "stable-diffusion") == {
        "remaining": 5,
        "remainingThisMonth": 50,
    }
    (request,) = sim.received("GET", r"^/api/remaining/generations$")[-1:]
    assert request.query == {"user": owner.public_id, "model": "stable-diffusion"}


def test_the_prompt_page_shows_what_meteron_says_is_left(sim, owner_client, owner, sync_model):
    sim.daily_limit, sim.monthly_limit = 7, 70
    page = owner_client.get("/").content.decode()
    assert "7 left at" in page
    (request,) = sim.received("GET", r"^/api/remaining/generations$")
    assert request.query == {"user": owner.public_id, "model": "stable-diffusion"}
    owner_client.get("/")
    assert len(sim.received("GET", r"^/api/remaining/generations$")) == 1  # cached, not re-asked


def test_a_plain_429_is_a_retryable_rate_limit_with_retry_after(
    sim, sync_model, owner, make_generation
):
    sim.faults.status, sim.faults.retry_after = 429, "7"
    gen = make_generation(owner, model=sync_model, status=Generation.Status.RUNNING)
    with pytest.raises(ProviderError) as info:
        get_provider("meteron").submit(gen)
    assert not isinstance(info.value, LimitReached)
    assert info.value.retryable and info.value.retry_after == 7.0


@pytest.mark.parametrize(
    "faults",
    [
        {"status": 503, "times": 2},
        {"status": 429, "retry_after": "1", "times": 2},
    ],
    ids=["503", "429-retry-after"],
)
def test_transient_faults_are_retried_until_the_generation_completes(
    sim, settings, post, owner_client, sync_model, faults
):
    settings.EASEL_PROVIDER_TIMEOUT = 0.5
    sim.faults.set(**faults)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert gen.attempts == faults["times"] + 1


@pytest.mark.parametrize(
    "faults",
    [{"reset": True, "times": 1}, {"hang": 1.2, "times": 1}, {"status": 500, "times": 1}],
    ids=["reset", "timeout", "500"],  # a 500 may come after the work started (RFC 9110)
)
def test_a_submit_whose_reply_is_lost_is_sent_once_and_fails_readably(
    sim, settings, post, owner_client, sync_model, faults, monkeypatch
):
    """Issue #13: the request reached Meteron (a sync call is billed), so it is never re-sent;
    the generation ends failed with the reason and the ledger gives the image back (the faulted
    request left no generation in Meteron's listing, so there is nothing to reconcile)."""
    settings.EASEL_PROVIDER_TIMEOUT = 0.5
    monkeypatch.setattr(MeteronProvider, "sync_read_timeout", 0.5)
    sim.faults.set(**faults)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert "not sent again so you are not charged twice" in gen.error
    assert len(sim.submissions()) == 1 and gen.attempts == 1
    assert gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


@pytest.mark.parametrize(
    "setup, reason",
    [
        ({"status": 503}, "Meteron had a server error (503). (gave up after 3 attempts)"),
        ({"status": 400}, "Meteron refused the request (400)"),
        ({"malformed_json": True}, "not valid JSON; it was not sent again"),
        ({"expire_urls": True}, "(it may have expired)"),
    ],
    ids=["5xx-forever", "4xx", "malformed-json", "expired-url"],
)
def test_final_faults_fail_with_a_readable_reason(
    sim, post, owner_client, sync_model, setup, reason
):
    for key, value in setup.items():
        setattr(sim if key == "expire_urls" else sim.faults, key, value)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert reason in gen.error
    assert API_KEY not in gen.error


def test_a_missing_key_is_refused_by_the_simulator_and_named_in_the_reason(
    sim, settings, post, owner_client, sync_model
):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "meteron": {"api_key": "wrong", "base_url": sim.url},
    }
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error.startswith("Meteron refused Easel's credentials (401)")


def test_the_listing_follows_page_tokens_to_the_end(sim, async_model):
    sim.add_history("u_someone", "stable-diffusion", 5)
    sim.add_history("u_other", "stable-diffusion", 2)
    pages = list(
        get_provider("meteron").list_generations(
            user="u_someone", model="stable-diffusion", page_size=2
        )
    )
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({i["id"] for p in pages for i in p}) == 5
    tokens = [r.query["pageToken"] for r in sim.received("GET", r"^/api/images/generations$")]
    assert tokens[0] == "" and all(tokens[1:])


def test_the_simulator_serves_history_request_bodies(sim):
    (gen_id,) = sim.add_history("u_x", "m", 1, prompt="old prompt")
    obj = sim._object(sim.generations[gen_id])
    assert json.loads(base64.b64decode(obj["requestBody"]))["prompt"] == "old prompt"


def test_the_simulator_serves_queued_jobs_by_priority(
    sim, async_model, owner, stranger, make_generation
):
    import time

    # Jobs of 1 s checked 1.3 s in: the first is done, the high one runs, and a loaded machine
    # has 0.7 s before the low one could start (0.4/0.6 s was flaky under CI load).
    sim.capacity, sim.job_duration = 1, 1.0
    provider = get_provider("meteron")
    owner.priority, stranger.priority = "low", "high"
    first = make_generation(owner, model=async_model, status=Generation.Status.RUNNING)
    low = make_generation(owner, model=async_model, status=Generation.Status.RUNNING)
    high = make_generation(stranger, model=async_model, status=Generation.Status.RUNNING)
    jobs = {}
    for gen in (first, low, high):  # the first occupies the only server
        gen.provider_job_id = provider.submit(gen).job_id
        jobs[gen.pk] = gen
    assert [r.header("x-priority") for r in sim.submissions()] == ["low", "low", "high"]
    time.sleep(1.3)  # first done, the high-priority job (arrived last) runs before the low one
    assert isinstance(provider.check(first), Done)
    assert isinstance(provider.check(high), Pending | Done)
    assert sim._status(sim.generations[high.provider_job_id]) in ("processing", "completed")
    assert sim._status(sim.generations[low.provider_job_id]) == "pending"
