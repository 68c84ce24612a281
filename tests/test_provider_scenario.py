"""Contract tests: the Scenario adapter against the Scenario simulator over real HTTP on loopback."""

from __future__ import annotations

import base64
import functools
import time

import pytest
from django.urls import reverse

from generator import actions, tasks
from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from tests.conftest import drive_checks, require, uses_postgres
from tests.procs import Worker, redis_available
from tests.simulators.scenario import API_KEY, API_SECRET, ScenarioSimulator

pytestmark = pytest.mark.django_db


def point_at(settings, simulator) -> None:
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "scenario": {"api_key": API_KEY, "api_secret": API_SECRET, "base_url": simulator.url},
    }


@pytest.fixture
def sim(settings):
    with ScenarioSimulator() as simulator:
        point_at(settings, simulator)
        settings.EASEL_MAX_TRANSIENT_RETRIES = 3
        yield simulator


@pytest.fixture
def model(db):
    return AIModel.objects.create(
        slug="scenario-flux",
        name="Flux (Scenario)",
        provider="scenario",
        remote_id="model_sim-flux",
        options={"aspect_ratios": ["1:1", "16:9"], "max_images": 3, "negative_prompt": True},
        params={"body": {"guidance": 3.5}},
    )


@pytest.fixture
def post(post_prompt):
    return functools.partial(
        post_prompt, model="scenario-flux", prompt="a castle in the clouds", aspect_ratio="16:9"
    )


@pytest.fixture
def scheduled(scheduled_checks):
    return scheduled_checks


def drive(calls, timeout=10.0):
    drive_checks(calls, timeout, max_sleep=0.15)


def test_a_form_generation_completes_lands_in_the_gallery_and_keeps_the_tag(
    sim, post, owner_client, owner, model
):
    response = post(negative_prompt="rain", num_images="2", seed="7")
    assert response.status_code == 302
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    (request,) = sim.submissions()
    assert request.path == "/generate/custom/model_sim-flux"
    expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert request.header("authorization") == expected
    assert request.json == {
        "guidance": 3.5,
        "prompt": "a castle in the clouds",
        "negativePrompt": "rain",
        "seed": 7,
        "aspectRatio": "16:9",
        "numOutputs": 2,
    }
    # Scenario has no user field: the tag is the user's public id, recorded on our side.
    assert gen.tag_sent == owner.public_id
    assert gen.provider_job_id.startswith("job_sim")
    images = list(gen.images.order_by("index"))
    assert len(images) == 2 and all("/signed/asset_" in i.provider_url for i in images)
    assert len(sim.received("GET", r"^/assets/")) == 2
    page = owner_client.get("/gallery/").content.decode()
    assert reverse("gallery:image_file", args=[gen.public_id, 0, "thumb"]) in page
    sim.expire_urls = True
    original = owner_client.get(reverse("gallery:image_file", args=[gen.public_id, 1, "original"]))
    assert b"".join(original.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_polling_walks_every_documented_status_with_progress(sim, post, model, scheduled):
    sim.job_duration = 1.2
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.RUNNING
    seen, progress = set(), []
    end = time.monotonic() + 10
    while scheduled and time.monotonic() < end:
        pk, _, step = scheduled.pop(0)
        time.sleep(0.08)
        tasks.check_generation(pk, step)
        gen.refresh_from_db()
        seen.add(gen.provider_state.get("status"))
        progress.append(gen.progress)
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert {"warming-up", "in-progress", "finalizing"} <= seen
    running = [p for p in progress[:-1] if p is not None]
    assert running == sorted(running) and 0 < running[-1] < 1 and progress[-1] == 1.0


def test_a_legacy_job_id_field_is_read_too(sim, post, model):
    sim.legacy_job_id = True
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert gen.provider_job_id.startswith("job_sim")


def test_a_failed_job_shows_scenario_s_error(sim, post, model):
    sim.fail_reason = "NSFW content detected"
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error == "Scenario: NSFW content detected (Try another prompt.)"


def test_a_job_canceled_at_scenario_ends_canceled(sim, post, model, scheduled):
    sim.job_duration, sim.cancel_allowed = 5, True
    post()
    gen = Generation.objects.get()
    get_provider("scenario").cancel(gen)
    drive(scheduled)
    gen.refresh_from_db()
    assert gen.status == Generation.Status.CANCELED
    assert "Scenario canceled the job" in gen.error


def test_a_timed_out_job_fails_and_asks_scenario_to_cancel(sim, post, model, scheduled):
    sim.job_duration = 30
    model.timeout_seconds = 1
    model.save()
    post()
    time.sleep(1.1)
    drive(scheduled)
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error.startswith("Timed out")
    (action,) = sim.received("POST", r"/action$")
    assert action.json == {"action": "cancel"}  # refused with 400 by most jobs; best effort


def test_an_unknown_model_is_a_final_404(sim, post, model):
    model.remote_id = "model_missing"
    model.save()
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error.startswith("Scenario refused the request (404): Model model_missing")
    assert len(sim.submissions()) == 1


@pytest.mark.parametrize(
    "faults",
    [
        {"status": 503, "times": 2},  # only 503 is a refusal before handling (RFC 9110)
        {"status": 429, "retry_after": "1", "times": 1},
    ],
    ids=["5xx", "429-retry-after"],
)
def test_transient_submit_faults_are_retried_until_completed(sim, settings, post, model, faults):
    settings.EASEL_PROVIDER_TIMEOUT = 0.5
    sim.faults.set(**faults)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert gen.attempts == faults["times"] + 1
    assert len(sim.jobs) == 1  # one job at Scenario: a refused submit created nothing


@pytest.mark.parametrize(
    "faults", [{"reset": True, "times": 1}, {"hang": 1.2, "times": 1}], ids=["reset", "timeout"]
)
def test_a_submit_whose_reply_is_lost_is_sent_once_and_fails_readably(
    sim, settings, post, model, faults
):
    """Issue #13: the request may have started a billed job at Scenario: never re-sent."""
    settings.EASEL_PROVIDER_TIMEOUT = 0.5
    sim.faults.set(**faults)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert "not sent again so you are not charged twice" in gen.error
    assert len(sim.submissions()) == 1 and gen.attempts == 1
    assert gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


@pytest.mark.parametrize(
    "faults",
    [
        {"status": 500, "times": 2, "only": r"^/jobs/"},
        {"malformed_json": True, "times": 2, "only": r"^/jobs/"},
        {"reset": True, "times": 1, "only": r"^/assets/"},
        {"status": 429, "retry_after": "1", "times": 1, "only": r"^/jobs/"},
    ],
    ids=["5xx-poll", "malformed-poll", "reset-asset", "429-poll"],
)
def test_transient_poll_faults_are_retried_until_completed(sim, post, model, scheduled, faults):
    sim.faults.set(**faults)
    post()
    drive(scheduled)
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.COMPLETED, gen.error
    assert len(sim.submissions()) == 1  # polling retries never resubmit


@pytest.mark.parametrize(
    "setup, reason",
    [
        ({"faults.status": 503}, "Scenario had a server error (503). (gave up after 3 attempts)"),
        ({"faults.malformed_json": True}, "not valid JSON; it was not sent again"),
        ({"expire_urls": True}, "(it may have expired)"),
        ({"faults.status": 401}, "Scenario refused Easel's credentials (401)"),
    ],
    ids=["5xx-forever", "malformed-submit", "expired-url", "401"],
)
def test_final_faults_fail_with_a_readable_reason(sim, post, model, setup, reason):
    for key, value in setup.items():
        target = sim.faults if key.startswith("faults.") else sim
        setattr(target, key.removeprefix("faults."), value)
    post()
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert reason in gen.error
    assert API_SECRET not in gen.error


def test_polls_that_keep_failing_end_failed_not_running(sim, post, model, scheduled):
    sim.faults.status, sim.faults.only = 500, r"^/jobs/"
    post()
    drive(scheduled, timeout=20)
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.FAILED
    assert gen.error == "Scenario had a server error (500)."


def test_check_connection_names_the_host_and_never_the_secret(sim, model):
    line = get_provider("scenario").check_connection()
    assert "127.0.0.1" in line and API_SECRET not in line and API_KEY not in line


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_completes_an_async_scenario_job(tmp_path, settings, owner, model):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    from config.celery import app

    app.conf.task_always_eager = False
    with ScenarioSimulator() as simulator:
        simulator.job_duration = 0.8
        point_at(settings, simulator)
        worker = Worker(
            tmp_path / "worker.log",
            **{
                "SCENARIO_BASE_URL": simulator.url,
                "SCENARIO_API_KEY": API_KEY,
                "SCENARIO_API_SECRET": API_SECRET,
            },
        )
        worker.purge()
        worker.start()
        try:
            gen, _ = actions.submit(
                owner,
                {
                    "model": model,
                    "prompt": "a worker's castle",
                    "num_images": 1,
                    "options": {"aspect_ratio": "1:1"},
                },
            )
            end = time.monotonic() + 60
            while time.monotonic() < end:
                gen.refresh_from_db()
                if gen.is_final:
                    break
                time.sleep(0.2)
        finally:
            worker.stop()
        assert gen.status == Generation.Status.COMPLETED, (gen.error, worker.log())
        assert gen.images.count() == 1
        assert len(simulator.submissions()) == 1
        assert len(simulator.received("GET", r"^/jobs/")) >= 2  # polled, not held
