"""Contract tests: the OpenAI-style provider (OpenAI, AI Refinery, any compatible base URL)
against its simulator over real HTTP on loopback."""

from __future__ import annotations

import base64
from unittest import mock

import pytest
from django.core.files.storage import default_storage

from generator.models import AIModel, Generation
from generator.providers import get_provider
from generator.providers.base import ProviderError
from generator.tasks import run_generation

pytestmark = pytest.mark.django_db

S = Generation.Status


def make_model(slug="dalle", provider="openai", remote_id="dall-e-2", params=None, **options):
    return AIModel.objects.create(
        slug=slug,
        name=slug.title(),
        provider=provider,
        remote_id=remote_id,
        options={"sizes": ["512x512", "1024x1024"], "max_images": 4, "seed": False, **options},
        params=params or {},
    )


def post_form(client, capture, *, model, size="512x512", n=1, prompt="a lighthouse at dusk"):
    data = {
        "model": model,
        "prompt": prompt,
        "size": size,
        "num_images": str(n),
        "seed": "",
        "negative_prompt": "",
        "idempotency_key": "",
    }
    with capture(execute=True):
        response = client.post("/", data)
    assert response.status_code == 302, response.content.decode()[:500]
    return Generation.objects.latest("created_at")


def assert_in_gallery_from_own_storage(client, gen, provider_host: str) -> None:
    page = client.get("/gallery/").content.decode()
    assert f"/gallery/{gen.public_id}/" in page
    assert provider_host not in page  # the provider's URL is only a record, never shown
    for image in gen.images.all():
        assert default_storage.exists(image.file.name)
        served = client.get(f"/gallery/{gen.public_id}/images/{image.index}/original/")
        assert served.status_code == 200
        body = b"".join(served.streaming_content) if served.streaming else served.content
        with default_storage.open(image.file.name) as f:
            assert body == f.read()


def test_an_openai_generation_from_the_form_completes_and_is_in_the_gallery(
    owner_client, owner, openai_configured, openai_sim, django_capture_on_commit_callbacks
):
    make_model(params={"response_format": "url"})
    gen = post_form(owner_client, django_capture_on_commit_callbacks, model="dalle", n=2)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert gen.images.count() == 2
    assert all(i.provider_url.startswith(openai_sim.url + "/files/") for i in gen.images.all())
    (call,) = openai_sim.received("POST", "/v1/images/generations")
    assert call.header("authorization") == f"Bearer {openai_sim.api_key}"
    assert call.json == {
        "prompt": "a lighthouse at dusk",
        "model": "dall-e-2",
        "n": 2,
        "size": "512x512",
        "user": owner.public_id,
        "response_format": "url",
    }
    assert_in_gallery_from_own_storage(owner_client, gen, openai_sim.url)


def test_b64_json_outputs_are_decoded_into_storage(
    owner, openai_configured, openai_sim, make_generation
):
    model = make_model(slug="gpt", remote_id="gpt-image-1", sizes=["1024x1024"])
    gen = make_generation(owner, model=model, status=S.QUEUED, options={"size": "1024x1024"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    image = gen.images.get()
    assert image.provider_url == "" and image.content_type == "image/png"


def test_ai_refinery_gets_its_quirks_and_the_user_tag(
    owner_client, owner, openai_configured, air_sim, django_capture_on_commit_callbacks
):
    make_model(
        slug="flux",
        provider="airefinery",
        remote_id="black-forest-labs/FLUX.1-schnell",
        params={"timeout": 30, "extra_body": {"steps": 4}},
    )
    gen = post_form(
        owner_client, django_capture_on_commit_callbacks, model="flux", size="1024x1024"
    )
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (call,) = air_sim.received("POST", "/v1/images/generations")
    assert call.json["user"] == owner.public_id
    assert call.json["timeout"] == 30.0 and call.json["extra_body"] == {"steps": 4}
    assert call.json["model"] == "black-forest-labs/FLUX.1-schnell"
    assert_in_gallery_from_own_storage(owner_client, gen, air_sim.url)


def test_any_compatible_base_url_works_including_one_ending_in_v1(
    owner, settings, openai_sim, make_generation
):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": openai_sim.api_key, "base_url": openai_sim.url + "/v1/"},
    }
    model = make_model()
    gen = make_generation(owner, model=model, status=S.QUEUED, options={"size": "512x512"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert len(openai_sim.received("POST", r"^/v1/images/generations$")) == 1


def test_a_content_policy_refusal_is_final_and_reads_well(
    owner, openai_configured, openai_sim, make_generation
):
    gen = make_generation(
        owner,
        model=make_model(),
        status=S.QUEUED,
        prompt="something forbidden",
        options={"size": "512x512"},
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "content policy" in gen.error and "safety system" in gen.error
    assert openai_sim.submissions == 0 and len(openai_sim.received("POST")) == 1  # not retried


def test_a_model_specific_refusal_names_the_field(
    owner, openai_configured, openai_sim, make_generation
):
    model = make_model(slug="d3", remote_id="dall-e-3", sizes=["1024x1024"])
    gen = make_generation(
        owner, model=model, status=S.QUEUED, num_images=2, options={"size": "1024x1024"}
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "n=1" in gen.error and "field: n" in gen.error


def test_ai_refinery_plain_error_bodies_are_shown(
    owner, openai_configured, air_sim, make_generation
):
    model = make_model(slug="flux", provider="airefinery", remote_id="flux")
    gen = make_generation(
        owner, model=model, status=S.QUEUED, prompt="forbidden thing", options={"size": "512x512"}
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "safety system" in gen.error


def test_a_wrong_key_fails_without_showing_the_key(owner, settings, openai_sim, make_generation):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": "sk-wrong-secret", "base_url": openai_sim.url},
    }
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "credentials" in gen.error and "sk-wrong-secret" not in gen.error


def test_an_unconfigured_provider_fails_with_a_reason(owner, settings, make_generation):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": "", "base_url": ""},
    }
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "not configured" in gen.error


# --- fault switches: each ends completed after retries or failed with a reason ------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "times": 1},
        {"status": 503, "times": 2},
        {"status": 429, "retry_after": "0", "times": 1},
    ],
    ids=["500-once", "503-twice", "429"],
)
def test_a_transient_fault_is_retried_until_completed(
    owner, openai_configured, openai_sim, make_generation, fault, django_capture_on_commit_callbacks
):
    openai_sim.faults.set(**fault)
    openai_sim.faults.only = r"/v1/images/generations"
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    with django_capture_on_commit_callbacks(execute=True):  # each retry is sent after commit
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert gen.attempts == len(openai_sim.received("POST")) > 1


def test_an_accepted_submit_whose_reply_cannot_be_read_is_final_and_never_sent_again(
    owner, openai_configured, openai_sim, make_generation
):
    # A 200 means OpenAI made (and billed) the images; a second POST would charge again. Only
    # the first reply is broken, so a re-send would show as a completed generation.
    openai_sim.faults.set(malformed_json=True, times=1, only=r"/v1/images/generations")
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "OpenAI accepted the request" in gen.error and "not sent again" in gen.error
    assert len(openai_sim.received("POST", "/v1/images/generations")) == 1
    assert gen.attempts == 1


def test_a_fault_that_never_clears_fails_with_a_reason(
    owner,
    openai_configured,
    openai_sim,
    make_generation,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.EASEL_MAX_TRANSIENT_RETRIES = 3
    openai_sim.faults.status = 500
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    with django_capture_on_commit_callbacks(execute=True):
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "server error (500)" in gen.error and "gave up after 3 attempts" in gen.error


def test_a_429_is_retried_after_the_time_the_provider_asks(
    owner, openai_configured, openai_sim, make_generation, django_capture_on_commit_callbacks
):
    openai_sim.faults.status, openai_sim.faults.retry_after, openai_sim.faults.times = 429, "7", 1
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    with (
        mock.patch.object(run_generation, "apply_async") as again,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run_generation(gen.pk)
    assert again.call_args.kwargs["countdown"] == 7.0
    gen.refresh_from_db()
    assert gen.status == S.QUEUED and "rate limiting" in gen.error
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED


def test_an_expired_output_url_fails_with_a_reason(
    owner, openai_configured, openai_sim, make_generation
):
    openai_sim.url_ttl = -1  # every URL is already past its expiry when fetched
    gen = make_generation(
        owner,
        model=make_model(params={"response_format": "url"}),
        status=S.QUEUED,
        options={"size": "512x512"},
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "expired" in gen.error
    assert gen.images.count() == 0


def test_the_provider_unit_maps_request_and_response_at_the_transport(
    owner, make_generation, settings
):
    import httpx

    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": "k", "base_url": "https://api.example"},
    }
    seen = {}
    png = base64.b64encode(b"\x89PNG fake").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["auth"] = str(request.url), request.headers["authorization"]
        return httpx.Response(
            200, json={"created": 1, "data": [{"b64_json": png}, {"url": "https://x/y.png"}]}
        )

    provider = type(get_provider("openai"))(transport=httpx.MockTransport(handler))
    gen = make_generation(owner, model=make_model(), options={"size": "512x512"})
    done = provider.submit(gen)
    assert seen == {"url": "https://api.example/v1/images/generations", "auth": "Bearer k"}
    assert done.images[0].data == b"\x89PNG fake" and done.images[1].url == "https://x/y.png"


# --- money first: a request that may have reached the provider is never sent again (#13) -----


def test_a_connect_failure_proves_nothing_was_sent_and_is_retried(
    owner, openai_configured, settings, make_generation, django_capture_on_commit_callbacks
):
    # Nothing listens on this port: connect refused, so the request never left.
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": "k", "base_url": "http://127.0.0.1:9"},
    }
    gen = make_generation(owner, model=make_model(), status=S.QUEUED, options={"size": "512x512"})
    with (
        mock.patch.object(run_generation, "apply_async") as again,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.QUEUED and "Could not reach OpenAI (ConnectError)" in gen.error
    assert again.called


def test_a_429_for_insufficient_quota_is_final_and_says_the_account_is_out_of_credit(
    owner, openai_configured, make_generation, settings
):
    import httpx

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        # The envelope of OpenAI's error-codes guide for an exhausted quota.
        error = {
            "message": "You exceeded your current quota, please check your plan and billing.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
        return httpx.Response(429, json={"error": error})

    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": "k", "base_url": "https://api.example"},
    }
    provider = type(get_provider("openai"))(transport=httpx.MockTransport(handler))
    gen = make_generation(owner, model=make_model(), options={"size": "512x512"})
    with pytest.raises(ProviderError) as info:
        provider.submit(gen)
    assert not info.value.retryable
    assert "the provider account is out of credit" in info.value.message
    assert len(calls) == 1


def test_the_model_errors_hook_defaults_to_nothing_found():
    from generator.providers.base import Provider

    assert Provider().model_errors(AIModel(provider="local", remote_id="x")) == []
