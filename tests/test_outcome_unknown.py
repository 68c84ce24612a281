"""Issue 13: what staff see of requests whose outcome is unknown, and AI Refinery's SDK header."""

from __future__ import annotations

import httpx
import pytest

from generator.models import AIModel, Generation
from generator.providers import get_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_the_failures_console_counts_and_filters_sent_outcome_unknown(
    staff_client, owner, make_generation
):
    reason = "OpenAI did not answer within 600 s; it may still have run; it was not sent again"
    gen = make_generation(owner, status=Generation.Status.FAILED, error=reason)
    Generation.objects.filter(pk=gen.pk).update(provider_state={"outcome_unknown": reason})
    make_generation(owner, status=Generation.Status.FAILED, error="Timed out")
    page = staff_client.get("/admin/generator/generation/failures/").content.decode()
    assert "2 failed generations" in page
    assert "Sent, outcome unknown: <strong>1</strong>" in page
    only = staff_client.get("/admin/generator/generation/failures/?unknown=1").content.decode()
    assert "1 failed generation " in only
    assert only.count('class="failure-group"') == 1 and "may still have run" in only


def test_ai_refinery_sends_the_sdk_version_header_and_it_is_configurable(
    owner, make_generation, settings
):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("sdk_version"))
        return httpx.Response(200, json={"created": 1, "data": [{"b64_json": "iVBORw=="}]})

    model = AIModel.objects.create(
        slug="air", name="Air", provider="airefinery", remote_id="black-forest-labs/FLUX.1-schnell"
    )
    for conf, expected in (({}, "1.33.2"), ({"sdk_version": "9.9.9"}, "9.9.9")):
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "airefinery": {"api_key": "k", "base_url": "https://air.example", **conf},
        }
        provider = type(get_provider("airefinery"))(transport=httpx.MockTransport(handler))
        provider.submit(make_generation(owner, model=model))
        assert seen[-1] == expected


@pytest.mark.parametrize(
    "remote_id, options, params, words",
    [
        ("dall-e-3", {"max_images": 4}, {}, "set max_images to 1"),
        ("dall-e-3", {"sizes": ["512x512"]}, {}, "does not take the sizes 512x512"),
        ("gpt-image-1", {}, {"response_format": "url"}, "take no response_format"),
        ("dall-e-2", {}, {"background": "transparent"}, "background is for GPT image models"),
        ("gpt-image-1", {}, {"style": "vivid"}, "style is for dall-e-3 only"),
    ],
)
def test_openai_model_errors_name_what_contradicts_the_spec(remote_id, options, params, words):
    model = AIModel(provider="openai", remote_id=remote_id, options=options, params=params)
    errors = get_provider("openai").model_errors(model)
    assert any(words in e for e in errors), errors


def test_openai_model_errors_pass_a_model_that_follows_the_spec():
    ok = AIModel(
        provider="openai",
        remote_id="dall-e-3",
        options={"max_images": 1, "sizes": ["1024x1024", "1792x1024"]},
        params={"style": "vivid", "quality": "hd"},
    )
    assert get_provider("openai").model_errors(ok) == []
