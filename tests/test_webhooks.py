"""Inbound webhooks: verified first, idempotent by provider job id, and completing at once."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from django.core.cache import cache

from generator import tasks
from generator.models import AIModel, Generation
from generator.providers import get_provider
from generator.tasks import run_generation
from tests.simulators.artificialstudio import ArtificialStudioSimulator
from tests.simulators.replicate import ReplicateSimulator

S = Generation.Status
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
URL = "/webhooks/replicate/"


@pytest.fixture
def rsim():
    with ReplicateSimulator(duration=60, send_webhooks=False) as server:
        yield server


@pytest.fixture
def assim():
    with ArtificialStudioSimulator(duration=60, send_webhooks=False) as server:
        yield server


@pytest.fixture
def configured(settings, rsim, assim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "replicate": {"api_key": rsim.token, "base_url": rsim.url, "webhook_secret": rsim.secret},
        "artificialstudio": {"api_key": assim.api_key, "base_url": assim.url},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 2.0
    return settings


def running(owner, provider: str, remote_id: str) -> Generation:
    """A generation submitted to the provider, its job long-running and no poll scheduled."""
    model = AIModel.objects.create(
        slug=f"m-{provider}",
        name=provider,
        provider=provider,
        remote_id=remote_id,
        options={"seed": False},
    )
    gen = Generation.objects.create(
        user=owner,
        model=model,
        provider=provider,
        prompt="a kite",
        status=S.QUEUED,
        tag_sent=owner.public_id,
    )
    with mock.patch("generator.tasks._schedule_check") as scheduled:
        run_generation(gen.pk)
    assert scheduled.called
    gen.refresh_from_db()
    assert gen.status == S.RUNNING and gen.provider_job_id
    return gen


def prediction_body(rsim, job_id: str) -> bytes:
    with rsim.lock:
        return json.dumps(rsim._public(rsim._advance(job_id))).encode()


def post_signed(client, rsim, body: bytes, **header_overrides):
    headers = {**rsim.signed_headers(body), **header_overrides}
    headers.pop("content-type", None)
    return client.post(URL, data=body, content_type="application/json", headers=headers)


@pytest.mark.django_db
class TestReplicate:
    def test_a_signed_webhook_completes_the_generation_at_once(
        self, client, owner, configured, rsim, django_capture_on_commit_callbacks
    ):
        gen = running(owner, "replicate", VERSION)
        rsim.duration = 0  # the prediction is now done at Replicate
        body = prediction_body(rsim, gen.provider_job_id)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_signed(client, rsim, body)
        assert response.status_code == 202
        gen.refresh_from_db()
        assert gen.status == S.COMPLETED, gen.error
        assert gen.images.count() == 1

    def test_a_duplicate_delivery_answers_2xx_and_stores_nothing_twice(
        self, client, owner, configured, rsim, django_capture_on_commit_callbacks
    ):
        gen = running(owner, "replicate", VERSION)
        rsim.duration = 0
        body = prediction_body(rsim, gen.provider_job_id)
        with django_capture_on_commit_callbacks(execute=True):
            assert post_signed(client, rsim, body).status_code == 202
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            again = post_signed(client, rsim, body)
        assert not callbacks
        assert again.status_code == 200 and again.json()["detail"] == "Already completed."
        assert gen.images.count() == 1

    @pytest.mark.parametrize(
        "tamper",
        [
            {"webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
            {"webhook-signature": ""},
            {"webhook-id": "msg_other"},
            {"webhook-timestamp": -301},
            {"webhook-timestamp": +301},
            {"webhook-timestamp": "yesterday"},
        ],
        ids=["bad-signature", "no-signature", "other-id", "stale", "future", "garbage-timestamp"],
    )
    def test_an_unverified_webhook_is_refused_and_changes_nothing(
        self, client, owner, configured, rsim, django_capture_on_commit_callbacks, tamper
    ):
        gen = running(owner, "replicate", VERSION)
        rsim.duration = 0
        body = prediction_body(rsim, gen.provider_job_id)
        headers = rsim.signed_headers(body)
        if isinstance(tamper.get("webhook-timestamp"), int):
            # Re-signed with the wrong time, as a replay of an old (or a future) message would be.
            headers = rsim.signed_headers(
                body,
                webhook_id=headers["webhook-id"],
                timestamp=int(time.time()) + tamper["webhook-timestamp"],
            )
        else:
            headers.update(tamper)
        headers.pop("content-type")
        polls = len(rsim.received("GET"))
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(URL, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 401 and not callbacks
        gen.refresh_from_db()
        assert gen.status == S.RUNNING and gen.images.count() == 0
        assert len(rsim.received("GET")) == polls

    def test_a_body_changed_after_signing_is_refused(self, client, owner, configured, rsim):
        gen = running(owner, "replicate", VERSION)
        body = prediction_body(rsim, gen.provider_job_id)
        headers = rsim.signed_headers(body)
        headers.pop("content-type")
        forged = body.replace(b'"status": "processing"', b'"status": "succeeded"')
        assert forged != body
        assert (
            client.post(
                URL, data=forged, content_type="application/json", headers=headers
            ).status_code
            == 401
        )

    def test_one_valid_signature_among_several_is_enough(
        self, client, owner, configured, rsim, django_capture_on_commit_callbacks
    ):
        gen = running(owner, "replicate", VERSION)
        rsim.duration = 0
        body = prediction_body(rsim, gen.provider_job_id)
        headers = rsim.signed_headers(body)
        headers["webhook-signature"] = "v1,b2xkLWtleQ== " + headers["webhook-signature"]
        headers.pop("content-type")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(URL, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 202

    def test_an_unknown_job_is_a_404_with_no_side_effects(
        self, client, owner, configured, rsim, django_capture_on_commit_callbacks
    ):
        body = json.dumps({"id": "nosuchprediction", "status": "succeeded", "output": []}).encode()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = post_signed(client, rsim, body)
        assert response.status_code == 404 and not callbacks
        assert not rsim.received("GET", r"/v1/predictions/")

    def test_the_signing_key_is_fetched_from_replicate_when_not_configured(
        self, client, owner, configured, rsim, settings, django_capture_on_commit_callbacks
    ):
        settings.EASEL_PROVIDERS["replicate"] = {
            **settings.EASEL_PROVIDERS["replicate"],
            "webhook_secret": "",
        }
        cache.clear()
        gen = running(owner, "replicate", VERSION)
        rsim.duration = 0
        body = prediction_body(rsim, gen.provider_job_id)
        with django_capture_on_commit_callbacks(execute=True):
            assert post_signed(client, rsim, body).status_code == 202
            post_signed(client, rsim, body)
        assert len(rsim.received("GET", r"^/v1/webhooks/default/secret$")) == 1  # then cached
        gen.refresh_from_db()
        assert gen.status == S.COMPLETED


@pytest.mark.django_db
class TestArtificialStudio:
    def url(self):
        return "/webhooks/artificialstudio/"

    def test_a_webhook_triggers_a_re_fetch_that_completes_the_generation(
        self, client, owner, configured, assim, django_capture_on_commit_callbacks
    ):
        gen = running(owner, "artificialstudio", "flux-schnell")
        assim.duration = 0
        gets = len(assim.received("GET"))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                self.url(),
                data={"id": gen.provider_job_id, "status": "success"},
                content_type="application/json",
                headers={
                    "X-Webhook-Source": "artificial-studio",
                    "X-Media-Id": gen.provider_job_id,
                },
            )
        assert response.status_code == 202
        assert len(assim.received("GET", rf"^/api/generations/{gen.provider_job_id}$")) == gets + 1
        gen.refresh_from_db()
        assert gen.status == S.COMPLETED and gen.images.count() == 1

    def test_a_spoofed_success_changes_nothing_because_the_api_is_asked(
        self, client, owner, configured, assim, django_capture_on_commit_callbacks
    ):
        gen = running(owner, "artificialstudio", "flux-schnell")  # still processing at the API
        spoof = {
            "id": gen.provider_job_id,
            "status": "success",
            "output": "https://evil.example/x.png",
        }
        with (
            mock.patch("generator.tasks._schedule_check"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = client.post(
                self.url(),
                data=spoof,
                content_type="application/json",
                headers={"X-Webhook-Source": "artificial-studio"},
            )
        assert response.status_code == 202
        gen.refresh_from_db()
        assert gen.status == S.RUNNING and gen.images.count() == 0

    def test_a_burst_of_webhooks_for_one_job_queues_one_check(
        self, client, owner, configured, assim, django_capture_on_commit_callbacks, monkeypatch
    ):
        gen = running(owner, "artificialstudio", "flux-schnell")  # still processing at the API
        queued = []
        monkeypatch.setattr(
            "generator.tasks.check_generation.apply_async", lambda args, **kw: queued.append(args)
        )
        headers = {"X-Webhook-Source": "artificial-studio"}
        body = {"id": gen.provider_job_id, "status": "success"}
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(100):
                response = client.post(
                    self.url(), data=body, content_type="application/json", headers=headers
                )
                assert response.status_code == 202
        assert queued == [(gen.pk, 0)]
        # Once that check has started, the next webhook queues a new one.
        with mock.patch("generator.tasks._schedule_check"):
            tasks.check_generation(gen.pk, 0)
        with django_capture_on_commit_callbacks(execute=True):
            client.post(self.url(), data=body, content_type="application/json", headers=headers)
        assert queued == [(gen.pk, 0), (gen.pk, 0)]

    def test_a_webhook_without_the_source_header_is_refused(self, client, owner, configured, assim):
        gen = running(owner, "artificialstudio", "flux-schnell")
        response = client.post(
            self.url(), data={"id": gen.provider_job_id}, content_type="application/json"
        )
        assert response.status_code == 401


@pytest.mark.django_db
class TestTheEndpoint:
    def test_it_refuses_other_methods_and_providers_without_webhooks(self, client, configured):
        assert client.get(URL).status_code == 405
        assert (
            client.post("/webhooks/openai/", data={}, content_type="application/json").status_code
            == 404
        )
        assert (
            client.post("/webhooks/nosuch/", data={}, content_type="application/json").status_code
            == 404
        )

    def test_bad_json_is_a_400(self, client, configured, rsim):
        for body in (b"{not json", b"[1, 2]"):
            response = client.post(
                URL,
                data=body,
                content_type="application/json",
                headers={k: v for k, v in rsim.signed_headers(body).items() if k != "content-type"},
            )
            assert response.status_code == 400

    def test_a_body_over_one_megabyte_is_a_413(self, client, configured, rsim):
        body = json.dumps({"id": "x", "logs": "a" * (1024 * 1024)}).encode()
        response = client.post(URL, data=body, content_type="application/json")
        assert response.status_code == 413

    def test_the_webhook_url_is_built_from_public_base_url(self, settings):
        settings.PUBLIC_BASE_URL = "https://easel.example.org"
        assert (
            get_provider("replicate").webhook_url()
            == "https://easel.example.org/webhooks/replicate/"
        )


# --- end to end: the simulators POST real webhooks to a live server ----------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["replicate", "artificialstudio"])
def test_a_real_webhook_from_the_provider_completes_the_generation_without_polling(
    live_server, settings, owner, provider
):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.EASEL_PROVIDER_TIMEOUT = 5.0
    if provider == "replicate":
        sim = ReplicateSimulator(duration=0.5)
        creds = {"api_key": sim.token, "webhook_secret": sim.secret}
        remote_id, job_path = VERSION, r"^/v1/predictions/"
    else:
        sim = ArtificialStudioSimulator(duration=0.5)
        creds = {"api_key": sim.api_key}
        remote_id, job_path = "flux-schnell", r"^/api/generations/"
    with sim:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            provider: {**creds, "base_url": sim.url},
        }
        # Easel hands out a webhook only for an https public PUBLIC_BASE_URL, which a loopback
        # live server cannot be: the URL is given here, and the simulator's HTTPS check is off.
        sim.webhook_public_only = False
        hook = f"{live_server.url}/webhooks/{provider}/"
        with mock.patch("generator.providers.base.HttpProvider.webhook_url", return_value=hook):
            gen = running(owner, provider, remote_id)  # no poll is ever scheduled
        started = time.monotonic()
        while time.monotonic() - started < 15:
            gen.refresh_from_db()
            if gen.status != S.RUNNING:
                break
            time.sleep(0.05)
        assert gen.status == S.COMPLETED, gen.error
        while not sim.deliveries and time.monotonic() - started < 15:
            time.sleep(0.05)  # the simulator records the delivery once our answer reaches it
        assert [d["status"] for d in sim.deliveries] == [202]
        assert sim.deliveries[0]["url"] == f"{live_server.url}/webhooks/{provider}/"
        assert len(sim.received("GET", job_path)) == 1  # the one re-fetch the webhook caused
        assert gen.images.count() == 1
