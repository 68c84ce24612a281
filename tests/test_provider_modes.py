"""The admin says how each model runs (issue 13): synchronous or polled, webhooks or not, how
long a reply is awaited, and Meteron's async mode labelled as resting on the older API."""

from __future__ import annotations

import pytest

from generator.models import AIModel

pytestmark = pytest.mark.django_db


def model(provider, remote_id="m", **params):
    return AIModel.objects.create(
        slug=f"{provider}-{len(params)}", name=provider, provider=provider, remote_id=remote_id,
        params=params, timeout_seconds=300,
    )  # fmt: skip


def runs(client, m) -> str:
    page = client.get(f"/admin/generator/aimodel/{m.pk}/change/").content.decode()
    assert page.count("How it runs") >= 1
    return page


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_each_provider_says_how_it_runs(staff_client, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    assert "Synchronous: one request, its reply awaited up to 300 s" in runs(
        staff_client, model("openai", "gpt-image-1")
    )
    assert "awaited up to 300 s" in runs(staff_client, model("meteron"))  # sync by default
    assert "rests on the older API&#x27;s behaviour" in runs(
        staff_client, model("meteron", **{"async": True})
    )
    assert "no webhooks (PUBLIC_BASE_URL is not a public https address)" in runs(
        staff_client, model("replicate", "owner/name")
    )
    assert "Asynchronous: submitted once, then polled" in runs(staff_client, model("scenario"))
    assert "Offline" in runs(staff_client, model("local"))


def test_webhooks_are_named_only_for_a_public_https_base(staff_client, settings):
    settings.PUBLIC_BASE_URL = "https://easel.example.com"
    page = runs(staff_client, model("artificialstudio", "flux-schnell"))
    assert "webhooks to https://easel.example.com/webhooks/artificialstudio/" in page
    listing = staff_client.get("/admin/generator/aimodel/").content.decode()
    assert "How it runs" in listing
