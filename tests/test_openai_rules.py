"""Issue 13 rows for OpenAI-style providers: how long a submit waits, the per-model rules of
OpenAI's images API in the admin, and a simulator that answers as the spec says (over loopback).
"""

from __future__ import annotations

import httpx
import pytest

from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from generator.tasks import run_generation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("openai_configured")]
S = Generation.Status


def model(provider="openai", remote_id="dall-e-2", params=None, timeout_seconds=600, **options):
    return AIModel.objects.create(
        slug=f"{provider}-{AIModel.objects.count()}",
        name="M",
        provider=provider,
        remote_id=remote_id,
        options={"sizes": ["512x512", "1024x1024"], "max_images": 4, **options},
        params=params or {},
        timeout_seconds=timeout_seconds,
    )


# --- how long the submit waits ---------------------------------------------------------------


def test_each_submit_waits_as_long_as_its_sdk_cut_to_the_models_timeout(owner, make_generation):
    openai, air = get_provider("openai"), get_provider("airefinery")
    cases = [
        (openai, model(), 600.0),  # openai/_constants.py DEFAULT_TIMEOUT = 600 s
        (openai, model(timeout_seconds=90), 90.0),
        (air, model("airefinery"), 60.0),  # airefinery-sdk air/types/constants.py: 60
        (air, model("airefinery", params={"timeout": 30}), 30.0),
        (air, model("airefinery", params={"timeout": 900}, timeout_seconds=120), 120.0),
    ]
    for provider, m, seconds in cases:
        gen = make_generation(owner, model=m)
        assert provider.submit_seconds(gen) == seconds, (m.provider, m.params)
        timeout = provider.submit_timeout(gen)
        assert timeout.read == seconds and timeout.connect <= 10.0


@pytest.mark.parametrize("flavour", ["openai", "airefinery"])
def test_a_slow_reply_within_the_sdk_wait_still_completes(
    owner, openai_sim, air_sim, make_generation, flavour
):
    # The reply takes longer than EASEL_PROVIDER_TIMEOUT (1 s) but well under the SDK's wait.
    server = openai_sim if flavour == "openai" else air_sim
    server.faults.latency = 1.5  # on every request: the reply must come as b64_json, no URL
    remote_id = "gpt-image-1" if flavour == "openai" else "black-forest-labs/FLUX.1-schnell"
    m = model(flavour, remote_id, sizes=["1024x1024"])
    gen = make_generation(owner, model=m, status=S.QUEUED, options={"size": "1024x1024"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert len(server.received("POST", "/v1/images/generations")) == 1


@pytest.mark.parametrize("flavour", ["openai", "airefinery"])
@pytest.mark.parametrize(
    "fault, words",
    [
        ({"hang": 1.5}, "did not answer within 1 s; it may still have run"),
        ({"reset": True}, "broke after the request was sent"),
    ],
    ids=["read-timeout", "reset-after-send"],
)
def test_a_reply_lost_after_sending_fails_once_readably_and_refunds(
    owner,
    openai_sim,
    air_sim,
    make_generation,
    flavour,
    fault,
    words,
    django_capture_on_commit_callbacks,
):
    # Money first (#13): a request that may have reached the provider is never sent again.
    server = openai_sim if flavour == "openai" else air_sim
    server.faults.set(**fault, only=r"/v1/images/generations")
    # OpenAI waits its SDK's 600 s cut to the model's timeout_seconds; AI Refinery its `timeout`.
    params = {"timeout": 1} if flavour == "airefinery" else None
    m = model(flavour, params=params, timeout_seconds=1 if flavour == "openai" else 600)
    gen = make_generation(owner, model=m, status=S.QUEUED)
    UsageEntry.objects.charge(gen)
    with django_capture_on_commit_callbacks(execute=True):  # a requeue would be sent here
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED, gen.error
    assert words in gen.error and "not sent again so you are not charged twice" in gen.error
    assert "use Retry" in gen.error
    assert len(server.received("POST", "/images/generations")) == 1
    assert gen.attempts == 1
    assert gen.provider_state.get("outcome_unknown")
    assert UsageEntry.objects.filter(generation=gen, kind=UsageEntry.Kind.REFUND).exists()


def test_ai_refinery_sends_the_timeout_it_waits(owner, air_sim, make_generation):
    m = model("airefinery", params={"timeout": 900}, timeout_seconds=120)
    run_generation(make_generation(owner, model=m, status=S.QUEUED).pk)
    (call,) = air_sim.received("POST", "/v1/images/generations")
    assert call.json["timeout"] == 120.0 and call.header("sdk_version") == "1.33.2"


# --- OpenAI's per-model rules in the admin ---------------------------------------------------


@pytest.mark.parametrize(
    "remote_id, options, params, words",
    [
        ("dall-e-2", {"sizes": ["1792x1024"]}, {}, "dall-e-2 does not take the sizes 1792x1024"),
        ("gpt-image-1", {"sizes": ["512x512"]}, {}, "gpt-image-1 does not take the sizes 512x512"),
        ("gpt-image-2", {"sizes": ["1000x1000"]}, {}, "does not take the sizes 1000x1000"),
        ("gpt-image-2", {"sizes": ["4096x1024"]}, {}, "does not take the sizes 4096x1024"),
        ("dall-e-3", {"max_images": 1}, {"output_format": "png"}, "output_format is for GPT"),
        ("dall-e-2", {}, {"moderation": "low"}, "moderation is for GPT image models only"),
        ("dall-e-2", {}, {"style": "vivid"}, "style is for dall-e-3 only, not dall-e-2"),
        ("gpt-image-1", {}, {"quality": "hd"}, "gpt-image-1 does not take quality 'hd'"),
        ("dall-e-3", {"max_images": 1}, {"quality": "high"}, "does not take quality 'high'"),
        ("dall-e-2", {}, {"quality": "hd"}, "dall-e-2 does not take quality 'hd'"),
        ("gpt-image-1-mini", {}, {"response_format": "b64_json"}, "take no response_format"),
    ],
)
def test_openai_rules_name_each_contradiction(remote_id, options, params, words):
    m = AIModel(provider="openai", remote_id=remote_id, options=options, params=params)
    errors = get_provider("openai").model_errors(m)
    assert any(words in e for e in errors), errors


@pytest.mark.parametrize(
    "remote_id, options, params",
    [
        ("dall-e-2", {"max_images": 10, "sizes": ["256x256"]}, {"quality": "standard"}),
        ("dall-e-3", {"max_images": 1, "sizes": ["1792x1024"]}, {"quality": "hd"}),
        ("gpt-image-1", {"sizes": ["1536x1024", "auto"]}, {"background": "transparent"}),
        ("gpt-image-2", {"sizes": ["1536x864", "3840x2160", "1024x1024"]}, {"quality": "low"}),
        ("my-compatible-model", {"sizes": ["77x77"]}, {"anything": 1}),  # no rules for it
    ],
)
def test_openai_rules_pass_what_the_spec_allows(remote_id, options, params):
    m = AIModel(provider="openai", remote_id=remote_id, options=options, params=params)
    assert get_provider("openai").model_errors(m) == []


# --- the simulator answers as the reference does ----------------------------------------------


def post(server, path="/v1/images/generations", key=None, **body):
    key = key or server.api_key
    return httpx.post(
        server.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=5
    )


@pytest.mark.parametrize(
    "body, status, param, code",
    [
        ({"model": "gpt-image-1", "response_format": "url"}, 400, "response_format", None),
        ({"model": "dall-e-3", "n": 2}, 400, "n", None),
        ({"model": "dall-e-2", "size": "1792x1024"}, 400, None, "invalid_size"),
        ({"model": "dall-e-3", "size": "512x512"}, 400, None, "invalid_size"),
        ({"model": "dall-e-2", "quality": "hd"}, 400, "quality", "invalid_value"),
        ({"model": "dall-e-2", "style": "vivid"}, 400, "style", "unknown_parameter"),
        ({"model": "dall-e-2", "timeout": 60}, 400, "timeout", "unknown_parameter"),
        ({"model": "gpt-image-2", "size": "1536x864"}, 200, None, None),
        ({"model": "dall-e-3", "style": "natural", "quality": "hd"}, 200, None, None),
    ],
)
def test_the_openai_simulator_refuses_what_openai_refuses(openai_sim, body, status, param, code):
    response = post(openai_sim, prompt="a lighthouse", **body)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["data"]
        return
    error = response.json()["error"]  # OpenAI's envelope
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    assert openai_sim.submissions == 0


def test_the_ai_refinery_simulator_takes_its_sdks_body_and_header(air_sim):
    response = httpx.post(
        air_sim.url + "/v1/images/generations",
        json={"model": "flux", "prompt": "p", "timeout": 60, "extra_body": None, "n": 2},
        headers={"Authorization": f"Bearer {air_sim.api_key}", "sdk_version": "1.33.2"},
        timeout=5,
    )
    assert response.status_code == 200 and len(response.json()["data"]) == 2
    refused = post(air_sim, prompt="forbidden")
    assert refused.status_code == 400 and isinstance(refused.json()["error"], str)
    assert post(air_sim, "/v1/images/edits", prompt="p").status_code == 404  # no such API
    assert post(air_sim, key="wrong", prompt="p").status_code == 401


def test_the_openai_simulator_has_no_list_or_get_routes(openai_sim):
    auth = {"Authorization": f"Bearer {openai_sim.api_key}"}
    for path in ("/v1/images/generations", "/v1/images/generations/abc", "/v1/images"):
        assert httpx.get(openai_sim.url + path, headers=auth, timeout=5).status_code == 404
