"""Issue 13 rows for Replicate, each against the simulator over loopback HTTP: `aborted` is
final, `Prefer: wait` follows the spec's pattern with a read longer than the wait, the API token
goes only to Replicate's own hosts, and a `whsec_` secret without padding verifies as in the
Standard Webhooks reference library.
"""

from __future__ import annotations

import base64
import json
import secrets
from unittest import mock

import httpx
import pytest

from generator.models import Generation, UsageEntry
from generator.providers import get_provider
from generator.providers.base import Provider
from generator.tasks import run_generation
from tests import test_provider_replicate as contract
from tests.simulators.replicate import ReplicateSimulator

pytestmark = pytest.mark.django_db
S = Generation.Status
VERSION = contract.VERSION
sim, configured = contract.sim, contract.configured  # the contract tests' fixtures
CREATE = r"^/v1/predictions$"


def submit(client, capture, prompt="a lighthouse at dusk") -> Generation:
    data = {"model": "sdxl", "prompt": prompt, "size": "768x768", "num_images": "1"}
    with capture(execute=True):
        assert client.post("/", {**data, "idempotency_key": ""}).status_code == 302
    return Generation.objects.latest("created_at")


def test_an_aborted_prediction_ends_the_generation_canceled_with_the_reason_refunded(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    contract.make_model()
    sim.abort_before_start, sim.start_after, sim.duration = True, 0.2, 5
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    gen.refresh_from_db()
    assert gen.status == S.CANCELED
    assert "aborted the prediction before it started" in gen.error
    assert "deadline reached" in gen.error  # Replicate's own words
    kinds = UsageEntry.objects.filter(generation=gen).values_list("kind", flat=True)
    assert sorted(kinds) == ["charge", "refund"]
    assert len(sim.received("POST", CREATE)) == 1


@pytest.mark.parametrize(
    "wait, header, duration, done_at_once",
    [(True, "wait", 1.5, True), (2, "wait=2", 3.0, False), ("wait=3", "wait=3", 1.5, True)],
    ids=["bare-wait-60s", "wait-shorter-than-the-job", "wait-string"],
)
def test_prefer_wait_is_sent_as_the_spec_says_and_read_for_longer_than_the_wait(
    owner, configured, sim, make_generation, wait, header, duration, done_at_once
):
    # EASEL_PROVIDER_TIMEOUT is 1 s here: a read cut to it would lose every one of these.
    sim.duration = duration
    gen = contract.queued(make_generation, owner, model=contract.make_model(params={"wait": wait}))
    with mock.patch("generator.tasks._schedule_check") as scheduled:
        run_generation(gen.pk)
    gen.refresh_from_db()
    (create,) = sim.received("POST", CREATE)
    assert create.header("prefer") == header
    if done_at_once:
        assert gen.status == S.COMPLETED, gen.error  # the images came in the first reply
        scheduled.assert_not_called()
    else:  # the wait ended first: Replicate answered with the running prediction
        assert gen.status == S.RUNNING and gen.provider_job_id, gen.error
        scheduled.assert_called_once()


@pytest.mark.parametrize("bad", [0, 61, "wait=0", "wait=61", "soon", "wait=5s", 2.5])
def test_a_prefer_value_outside_the_pattern_is_refused_in_the_admin_and_never_sent(
    owner, configured, sim, make_generation, bad
):
    model = contract.make_model(params={"wait": bad})
    (error,) = get_provider("replicate").options_errors(model)
    assert "params.wait" in error
    gen = contract.queued(make_generation, owner, model=model)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "nothing was sent" in gen.error
    assert not sim.received("POST")


def test_the_simulator_refuses_a_prefer_header_outside_the_spec_pattern(sim):
    reply = httpx.post(
        f"{sim.url}/v1/predictions",
        json={"version": VERSION, "input": {"prompt": "x"}},
        headers={"Authorization": f"Bearer {sim.token}", "Prefer": "wait=0"},
    )
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
    assert "Prefer" in reply.json()["detail"] and not sim.predictions


# --- the API token and output files ----------------------------------------------------


@pytest.mark.parametrize(
    "url, gets_token",
    [
        ("https://replicate.delivery/xezq/abc/out-0.webp", True),
        ("https://pbxt.replicate.delivery/abc/out.png", True),
        ("https://api.replicate.com/v1/files/abc", True),
        ("http://replicate.delivery/abc.png", False),  # not over TLS
        ("https://replicate.delivery.evil.example/abc.png", False),
        ("https://evilreplicate.delivery/abc.png", False),
        ("https://cdn.example.com/out.png", False),
        ("not a url at all", False),
    ],
)
def test_the_token_is_only_for_replicates_own_hosts(settings, url, gets_token):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "replicate": {"api_key": "r8_secret", "base_url": "https://api.replicate.com/v1"},
    }
    headers = get_provider("replicate").download_headers(url)
    assert headers == ({"Authorization": "Bearer r8_secret"} if gets_token else {})


def test_an_output_on_a_third_party_host_is_fetched_without_the_token(
    owner, configured, sim, make_generation
):
    with ReplicateSimulator() as elsewhere:  # a model that uploads its result to its own CDN
        sim.delivery_via = elsewhere
        gen = contract.queued(make_generation, owner)
        run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == S.COMPLETED, gen.error
        (fetch,) = elsewhere.received("GET", r"^/delivery/")
        assert fetch.header("authorization") == ""
        assert sim.token not in json.dumps(fetch.headers)


@pytest.mark.skipif(
    not hasattr(Provider, "download_headers"),
    reason="needs the download_headers hook in base.py/outputs.py (see the Replicate report)",
)
def test_an_output_on_replicates_own_host_is_fetched_with_the_token(
    owner, configured, sim, make_generation
):
    gen = contract.queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (fetch,) = sim.received("GET", r"^/delivery/")
    assert fetch.header("authorization") == f"Bearer {sim.token}"


# --- webhook secrets --------------------------------------------------------------------


def test_a_whsec_secret_without_base64_padding_verifies_like_the_reference_library(
    client, owner, settings, make_generation, django_capture_on_commit_callbacks
):
    key = secrets.token_bytes(32)  # 44 base64 characters, the last one "="
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    with ReplicateSimulator(secret=unpadded, duration=60, send_webhooks=False) as rsim:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "replicate": {"api_key": rsim.token, "base_url": rsim.url, "webhook_secret": unpadded},
        }
        settings.EASEL_PROVIDER_TIMEOUT = 2.0
        gen = contract.queued(make_generation, owner)
        with mock.patch("generator.tasks._schedule_check"):
            run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == S.RUNNING
        rsim.duration = 0  # done at Replicate; its webhook says so
        with rsim.lock:
            body = json.dumps(rsim._public(rsim._advance(gen.provider_job_id))).encode()
        headers = rsim.signed_headers(body)  # signed by standardwebhooks.Webhook(secret).sign
        headers.pop("content-type")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/replicate/", data=body, content_type="application/json", headers=headers
            )
        assert response.status_code == 202
        gen.refresh_from_db()
        assert gen.status == S.COMPLETED, gen.error


def test_the_simulator_signs_with_the_standard_webhooks_reference_library():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    with ReplicateSimulator() as rsim:
        body = b'{"id": "p1", "status": "succeeded"}'
        headers = rsim.signed_headers(body)
        # The reference library's own verify() accepts what the simulator sends.
        assert standardwebhooks.Webhook(rsim.secret).verify(body, headers)["id"] == "p1"
