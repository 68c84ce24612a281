"""Contract tests: the Replicate provider against its simulator over real HTTP on loopback."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.files.storage import default_storage

from generator.models import AIModel, Generation
from generator.tasks import check_generation, run_generation
from tests.simulators.replicate import ReplicateSimulator

pytestmark = pytest.mark.django_db

S = Generation.Status
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


@pytest.fixture
def sim():
    with ReplicateSimulator() as server:
        yield server


@pytest.fixture
def configured(settings, sim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "replicate": {"api_key": sim.token, "base_url": sim.url, "webhook_secret": sim.secret},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 1.0
    # A port nothing listens on: these tests exercise polling; test_webhooks covers delivery.
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    sim.send_webhooks = False
    return settings


def make_model(slug="sdxl", remote_id=VERSION, params=None, **options):
    return AIModel.objects.create(
        slug=slug,
        name=slug.upper(),
        provider="replicate",
        remote_id=remote_id,
        options={"sizes": ["768x768"], "max_images": 4, "negative_prompt": True, **options},
        params=params or {},
    )


def queued(make_generation, owner, model=None, **kw):
    kw.setdefault("options", {"size": "768x768"})
    return make_generation(owner, model=model or make_model(), status=S.QUEUED, **kw)


def test_a_replicate_generation_from_the_form_completes_and_is_in_the_gallery(
    owner_client, owner, configured, sim, django_capture_on_commit_callbacks
):
    make_model()
    data = {
        "model": "sdxl",
        "prompt": "a red fox in snow",
        "size": "768x768",
        "num_images": "2",
        "seed": "42",
        "negative_prompt": "blurry",
        "idempotency_key": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post("/", data).status_code == 302
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    assert gen.provider_job_id in sim.predictions and gen.tag_sent == owner.public_id
    (create,) = sim.received("POST", r"^/v1/predictions$")
    assert create.header("authorization") == f"Bearer {sim.token}"
    assert create.json == {
        "version": VERSION,
        "input": {
            "prompt": "a red fox in snow",
            "negative_prompt": "blurry",
            "seed": 42,
            "num_outputs": 2,
            "width": 768,
            "height": 768,
        },
    }  # no webhook fields: PUBLIC_BASE_URL is not https and public, so Easel polls
    images = list(gen.images.all())
    assert len(images) == 2 and all(i.provider_url.startswith(sim.url) for i in images)
    page = owner_client.get("/gallery/").content.decode()
    assert f"/gallery/{gen.public_id}/" in page and sim.url not in page
    served = owner_client.get(f"/gallery/{gen.public_id}/images/0/original/")
    body = b"".join(served.streaming_content) if served.streaming else served.content
    with default_storage.open(images[0].file.name) as f:
        assert body == f.read()


def test_the_status_walk_is_polled_with_backoff_without_a_worker_waiting(
    owner, configured, sim, make_generation
):
    sim.duration, sim.start_after = 1.5, 0.05
    gen = queued(make_generation, owner)
    countdowns = []
    with mock.patch(
        "generator.tasks._schedule_check",
        side_effect=lambda g, countdown, step=0: countdowns.append((countdown, step)),
    ):
        run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == S.RUNNING and gen.provider_job_id and gen.progress == 0.05
        seen = set()
        for _ in range(100):
            check_generation(gen.pk, countdowns[-1][1])
            gen.refresh_from_db()
            seen.add(gen.provider_state.get("status"))
            if gen.status != S.RUNNING:
                break
            import time

            time.sleep(0.05)
    assert gen.status == S.COMPLETED, gen.error
    assert "processing" in seen
    assert [c for c, _ in countdowns[:3]] == [0.5, 1.0, 2.0]  # 0.5 s doubling (capped at 10 s)
    assert sim.submissions == 1  # polled, never submitted twice


def test_an_official_model_runs_through_the_models_endpoint(
    owner, configured, sim, make_generation
):
    gen = queued(
        make_generation,
        owner,
        model=make_model(
            remote_id="black-forest-labs/flux-schnell", params={"input": {"go_fast": True}}
        ),
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (create,) = sim.received("POST")
    assert create.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert "version" not in create.json and create.json["input"]["go_fast"] is True


def test_owner_name_colon_version_sends_just_the_version(owner, configured, sim, make_generation):
    gen = queued(make_generation, owner, model=make_model(remote_id=f"stability-ai/sdxl:{VERSION}"))
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert sim.received("POST")[0].json["version"] == VERSION


def test_prefer_wait_returns_the_images_in_the_first_reply(owner, configured, sim, make_generation):
    sim.duration = 0.3
    gen = queued(make_generation, owner, model=make_model(params={"wait": 5}))
    with mock.patch("generator.tasks._schedule_check") as scheduled:
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    scheduled.assert_not_called()
    assert sim.received("POST")[0].header("prefer") == "wait=5"
    assert not sim.received("GET", r"^/v1/predictions/")


def test_a_failed_prediction_shows_replicates_error(owner, configured, sim, make_generation):
    gen = queued(make_generation, owner, prompt="please fail")
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "CUDA out of memory" in gen.error


def test_an_unknown_version_is_refused_with_the_problem_detail(
    owner, configured, sim, make_generation
):
    gen = queued(make_generation, owner, model=make_model(remote_id="not-a-version"))
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "Invalid version or not permitted" in gen.error
    assert "(422)" in gen.error


def test_a_job_past_its_deadline_fails_and_is_canceled_at_replicate(
    owner, configured, sim, make_generation
):
    sim.duration = 60
    model = make_model()
    gen = queued(make_generation, owner, model=model)
    with mock.patch("generator.tasks._schedule_check"):
        run_generation(gen.pk)
    from datetime import timedelta

    from django.utils import timezone

    Generation.objects.filter(pk=gen.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    check_generation(gen.pk, 3)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and gen.error.startswith("Timed out")
    assert sim.predictions[gen.provider_job_id]["status"] == "canceled"


def test_a_wrong_token_fails_without_showing_it(owner, configured, sim, make_generation, settings):
    settings.EASEL_PROVIDERS["replicate"] = {
        **settings.EASEL_PROVIDERS["replicate"],
        "api_key": "r8_wrong_secret",
    }
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "credentials" in gen.error
    assert "r8_wrong_secret" not in gen.error


def test_the_connection_check_names_the_account(configured, sim):
    from generator.providers import get_provider

    assert "sim" in get_provider("replicate").check_connection()


# --- fault switches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, where",
    [
        # 503 is a refusal before handling (RFC 9110); a 500 to the create may have started a
        # prediction and is never re-sent (test_replicate_reconcile.py).
        pytest.param({"status": 503, "times": 1}, "submit", id="503-submit"),
        pytest.param({"status": 500, "times": 1}, "poll", id="500-poll"),
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
    sim.faults.only = r"^/v1/predictions$" if where == "submit" else r"^/v1/predictions/"
    gen = queued(make_generation, owner)
    with django_capture_on_commit_callbacks(execute=True):  # retries are sent after commit
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    if where == "poll":
        assert sim.submissions == 1  # a poll that failed never resubmits
        assert gen.provider_state.get("transient_errors") == 1


def test_an_accepted_submit_whose_reply_cannot_be_read_is_final_and_never_sent_again(
    owner, configured, sim, make_generation
):
    # A 2xx means Replicate started (and bills) the job; a second POST would charge again. Only
    # the first reply is broken, so a re-send would show as a completed generation.
    sim.faults.set(malformed_json=True, times=1, only=r"^/v1/predictions$")
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "Replicate accepted the request" in gen.error and "not sent again" in gen.error
    assert len(sim.received("POST", r"^/v1/predictions$")) == 1
    assert gen.attempts == 1


def test_a_poll_fault_that_never_clears_fails_with_a_reason(
    owner, configured, sim, make_generation, settings
):
    settings.EASEL_MAX_TRANSIENT_RETRIES = 2
    sim.faults.status, sim.faults.only = 503, r"^/v1/predictions/"
    gen = queued(make_generation, owner)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "server error (503)" in gen.error
    assert sim.submissions == 1


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
    sim.faults.only = r"^/v1/predictions$"
    gen = queued(make_generation, owner)
    with django_capture_on_commit_callbacks(execute=True):
        run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "not sent again so you are not charged twice" in gen.error
    # Every request the simulator saw, the faulted one included: exactly one submit.
    assert len(sim.received("POST", r"^/v1/predictions$")) == 1 and gen.attempts == 1
