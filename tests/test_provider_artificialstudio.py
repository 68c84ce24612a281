"""Contract tests: the Artificial Studio provider against its simulator over real HTTP on loopback."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from django.core.files.storage import default_storage

from generator.models import AIModel, Generation
from generator.tasks import check_generation, run_generation
from tests.simulators.artificialstudio import ArtificialStudioSimulator

pytestmark = pytest.mark.django_db

S = Generation.Status


@pytest.fixture
def sim():
    with ArtificialStudioSimulator(send_webhooks=False) as server:
        yield server


@pytest.fixture
def configured(settings, sim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "artificialstudio": {"api_key": sim.api_key, "base_url": sim.url},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 1.0
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # webhooks are covered in test_webhooks
    return settings


def make_model(slug="as-flux", remote_id="flux-schnell", params=None, **options):
    return AIModel.objects.create(
        slug=slug,
        name="AS Flux",
        provider="artificialstudio",
        remote_id=remote_id,
        options={"aspect_ratios": ["16:9", "1:1"], "max_images": 1, "seed": False, **options},
        params={"image_size_for": {"16:9": "landscape_16_9", "1:1": "square_hd"}, **(params or {})},
    )


def queued(make_generation, owner, model=None, **kw):
    kw.setdefault("options", {"aspect_ratio": "16:9"})
    return make_generation(owner, model=model or make_model(), status=S.QUEUED, **kw)


def test_an_artificial_studio_generation_from_the_form_completes_and_is_in_the_gallery(
    owner_client, owner, configured, sim, django_capture_on_commit_callbacks
):
    make_model()
    data = {
        "model": "as-flux",
        "prompt": "a tiny robot gardener",
        "aspect_ratio": "16:9",
        "num_images": "1",
        "seed": "",
        "negative_prompt": "",
        "idempotency_key": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post("/", data).status_code == 302
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    (run,) = sim.received("POST", "/api/run")
    assert run.header("authorization") == sim.api_key  # raw key, no "Bearer"
    assert run.json == {
        "tool": "create-image",
        "input": {
            "model": "flux-schnell",
            "prompt": "a tiny robot gardener",
            "image_size": "landscape_16_9",
        },
    }  # no webhook: PUBLIC_BASE_URL is not https and public, so Easel polls
    # No user field exists at Artificial Studio: the tag is kept in Easel's own record.
    assert gen.tag_sent == owner.public_id and gen.provider_job_id in sim.jobs
    image = gen.images.get()
    assert image.provider_url.startswith(sim.url) and (image.width, image.height) == (96, 64)
    page = owner_client.get("/gallery/").content.decode()
    assert f"/gallery/{gen.public_id}/" in page and sim.url not in page
    served = owner_client.get(f"/gallery/{gen.public_id}/images/0/original/")
    body = b"".join(served.streaming_content) if served.streaming else served.content
    with default_storage.open(image.file.name) as f:
        assert body == f.read()


def test_the_job_is_polled_through_processing_and_uploading(
    owner, configured, sim, make_generation
):
    sim.duration = 1.0
    gen = queued(make_generation, owner)
    steps = []
    with mock.patch(
        "generator.tasks._schedule_check",
        side_effect=lambda g, countdown, step=0: steps.append(step),
    ):
        run_generation(gen.pk)
        seen = set()
        for _ in range(100):
            gen.refresh_from_db()
            if gen.status != S.RUNNING:
                break
            seen.add(gen.provider_state.get("status"))
            time.sleep(0.05)
            check_generation(gen.pk, steps[-1])
    assert gen.status == S.COMPLETED, gen.error
    assert {"processing", "uploading"} <= seen
    assert sim.submissions == 1


def test_the_legacy_endpoint_reads_the_underscore_id(owner, configured, sim, make_generation):
    model = make_model(slug="pg", remote_id="playground-v2", params={"legacy": True})
    gen = queued(make_generation, owner, model=model, options={})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (call,) = sim.received("POST", "/api/generate")
    assert call.json["model"] == "playground-v2" and call.json["input"] == {"prompt": "a red fox"}


def test_an_error_status_shows_the_providers_reason(owner, configured, sim, make_generation):
    gen = queued(make_generation, owner, prompt="make it fail")
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "could not generate this image" in gen.error


def test_strict_validation_errors_are_shown_field_by_field(owner, configured, sim, make_generation):
    model = make_model(params={"input": {"style": "anime"}})
    gen = queued(make_generation, owner, model=model)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "Validation failed" in gen.error and "input.style" in gen.error
    assert sim.submissions == 0


def test_no_credits_left_reads_as_such(owner, configured, sim, make_generation):
    sim.credits = 0
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "run out of credits" in gen.error


def test_a_bearer_prefix_or_wrong_key_is_refused(owner, settings, sim, make_generation):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "artificialstudio": {"api_key": "prod_wrong_secret", "base_url": sim.url},
    }
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert (
        gen.status == S.FAILED
        and "credentials" in gen.error
        and "prod_wrong_secret" not in gen.error
    )


def test_without_an_https_public_base_url_no_webhook_is_sent_and_the_job_is_polled(
    owner, configured, sim, make_generation
):
    # The simulator refuses non-HTTPS and private webhook URLs, as the service does (AS4); the
    # old code sent PUBLIC_BASE_URL whenever the provider lived on loopback, and the job failed.
    assert sim.webhook_public_only
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (run,) = sim.received("POST", "/api/run")
    assert "webhook" not in run.json


@pytest.mark.parametrize(
    "base, expected",
    [
        ("http://127.0.0.1:9", ""),
        ("http://easel.example.org", ""),
        ("https://127.0.0.1", ""),
        ("https://10.1.2.3", ""),
        ("https://localhost:8443", ""),
        ("https://easel.example.org", "https://easel.example.org/webhooks/artificialstudio/"),
    ],
)
def test_a_webhook_url_is_only_handed_out_for_an_https_public_base_url(configured, base, expected):
    from django.test import override_settings

    from generator.providers import get_provider

    with override_settings(PUBLIC_BASE_URL=base):
        assert get_provider("artificialstudio").webhook_url() == expected


def test_an_https_public_base_url_goes_out_as_the_webhook(owner, configured, sim, make_generation):
    configured.PUBLIC_BASE_URL = "https://easel.example.org"
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (run,) = sim.received("POST", "/api/run")
    assert run.json["webhook"] == "https://easel.example.org/webhooks/artificialstudio/"


def test_the_connection_check_reports_credits(configured, sim):
    from generator.providers import get_provider

    assert "1000 credits" in get_provider("artificialstudio").check_connection()


@pytest.mark.parametrize(
    "fault, where",
    [
        pytest.param({"status": 502, "times": 1}, "submit", id="502-submit"),
        pytest.param({"status": 502, "times": 1}, "poll", id="502-poll"),
        pytest.param({"status": 429, "retry_after": "0", "times": 1}, "submit", id="429-submit"),
        pytest.param({"status": 429, "retry_after": "0", "times": 1}, "poll", id="429-poll"),
        pytest.param({"hang": 1.5, "times": 1}, "poll", id="timeout-poll"),
        pytest.param({"malformed_json": True, "times": 1}, "poll", id="malformed-json-poll"),
        pytest.param({"reset": True, "times": 1}, "poll", id="reset-poll"),
    ],
)
def test_a_transient_fault_ends_completed_after_retries(
    owner, configured, sim, make_generation, fault, where, django_capture_on_commit_callbacks
):
    sim.faults.set(**fault)
    sim.faults.only = r"^/api/run$" if where == "submit" else r"^/api/generations/"
    gen = queued(make_generation, owner)
    with django_capture_on_commit_callbacks(execute=True):  # retries are sent after commit
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error


def test_an_accepted_submit_whose_reply_cannot_be_read_is_final_and_never_sent_again(
    owner, configured, sim, make_generation
):
    # A 2xx means Artificial Studio started (and bills) the job; a second POST would charge again. Only
    # the first reply is broken, so a re-send would show as a completed generation.
    sim.faults.set(malformed_json=True, times=1, only=r"^/api/run$")
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "Artificial Studio accepted the request" in gen.error and "not sent again" in gen.error
    assert len(sim.received("POST", r"^/api/run$")) == 1
    assert gen.attempts == 1


def test_a_fault_that_never_clears_fails_with_a_reason(
    owner, configured, sim, make_generation, settings, django_capture_on_commit_callbacks
):
    settings.EASEL_MAX_TRANSIENT_RETRIES = 2
    sim.faults.status = 500
    gen = queued(make_generation, owner)
    with django_capture_on_commit_callbacks(execute=True):  # retries are sent after commit
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "server error (500)" in gen.error


def test_an_expired_output_url_fails_with_a_reason(owner, configured, sim, make_generation):
    sim.output_ttl = -1
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "expired" in gen.error


@pytest.mark.parametrize(
    "fault", [{"reset": True, "times": 1}, {"hang": 1.5, "times": 1}], ids=["reset", "timeout"]
)
def test_a_submit_whose_reply_is_lost_is_sent_once_and_fails_readably(
    owner, configured, sim, make_generation, fault, django_capture_on_commit_callbacks
):
    """Issue #13: the request may have started a billed job: it is never sent again."""
    sim.faults.set(**fault)
    sim.faults.only = r"^/api/run$"
    gen = queued(make_generation, owner)
    with django_capture_on_commit_callbacks(execute=True):
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "not sent again so you are not charged twice" in gen.error
    # Every request the simulator saw, the faulted one included: exactly one submit.
    assert len(sim.received("POST", r"^/api/run$")) == 1 and gen.attempts == 1
