"""Scenario, issue 13: what goes in the body (numOutputs), how a refused input reads, and a 2xx
reply that describes no job — against the Scenario simulator over loopback HTTP."""

from __future__ import annotations

import functools

import pytest

from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from tests.conftest import drive_checks
from tests.simulators.scenario import API_KEY, API_SECRET, WALK, ScenarioSimulator

pytestmark = pytest.mark.django_db
S = Generation.Status


@pytest.fixture
def sim(settings):
    with ScenarioSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "scenario": {"api_key": API_KEY, "api_secret": API_SECRET, "base_url": simulator.url},
        }
        settings.EASEL_MAX_TRANSIENT_RETRIES = 3
        yield simulator


def make_model(remote_id="model_imagen4-ultra", max_images=3, **params):
    return AIModel.objects.create(
        slug="sc",
        name="Scenario model",
        provider="scenario",
        remote_id=remote_id,
        options={"aspect_ratios": ["1:1"], "max_images": max_images},
        params=params,
    )


@pytest.fixture
def post(post_prompt):
    return functools.partial(post_prompt, model="sc", prompt="a quiet harbour", aspect_ratio="1:1")


def test_the_image_count_goes_out_as_numOutputs_and_that_many_images_come_back(sim, post):
    make_model()
    post(num_images="3")
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    (request,) = sim.submissions()
    assert request.json == {
        "prompt": "a quiet harbour",
        "aspectRatio": "1:1",
        "seed": gen.seed,  # Easel's random seed, so the result can be made again
        "numOutputs": 3,
    }
    assert gen.images.count() == 3


def test_a_model_that_names_its_count_differently_gets_that_name(sim, post):
    sim.models["model_imagen4-ultra"][2]["name"] = "numImages"
    make_model(num_outputs_field="numImages")
    post(num_images="2")
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    assert sim.submissions()[0].json["numImages"] == 2 and gen.images.count() == 2


def test_a_model_without_a_count_input_is_sent_none(sim, post):
    inputs = sim.models["model_imagen4-ultra"]
    inputs[:] = [i for i in inputs if i["name"] != "numOutputs"]
    model = make_model(max_images=1, num_outputs_field="")
    assert get_provider("scenario").model_errors(model) == []
    post()
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    body = {"prompt": "a quiet harbour", "aspectRatio": "1:1", "seed": gen.seed}
    assert sim.submissions()[0].json == body


def test_the_admin_is_told_a_model_without_a_count_input_makes_one_image(db):
    errors = get_provider("scenario").model_errors(make_model(max_images=2, num_outputs_field=""))
    assert errors == [
        'This Scenario model takes no image count (num_outputs_field is ""): set max_images to 1.'
    ]


@pytest.mark.parametrize(
    "params, field",
    [({"body": {"steps": 30}}, "steps"), ({"body": {"numImages": 2}}, "numImages")],
    ids=["extra-input", "old-count-name"],
)
def test_an_input_the_model_does_not_take_fails_with_a_sentence_naming_it(sim, post, params, field):
    make_model(**params)
    post()
    gen = Generation.objects.get()
    assert gen.status == S.FAILED
    sent = ", ".join(sorted({"aspectRatio", "numOutputs", "prompt", "seed", field}))
    assert gen.error == (
        f"Scenario refused the request (400): Invalid input: the model has no input named "
        f"'{field}' (Easel sent: {sent})"
    )
    assert len(sim.submissions()) == 1 and not sim.jobs  # final: a refusal is not retried
    assert gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


@pytest.mark.parametrize(
    "reply, words",
    [
        ({"ok": True}, "its reply did not describe a job"),
        ({"job": {"status": "queued"}}, "without a job id"),
        (["job_sim000001"], "its reply did not describe a job"),
    ],
    ids=["no-job", "no-job-id", "a-list"],
)
def test_a_2xx_reply_without_a_job_is_final_and_never_sent_again(sim, post, reply, words):
    """The job was created (and may be billed) at Scenario: sending again could charge twice."""
    make_model()
    sim.create_reply = reply
    post()
    gen = Generation.objects.get()
    assert gen.status == S.FAILED
    assert words in gen.error and "not sent again" in gen.error
    assert len(sim.submissions()) == 1 and len(sim.jobs) == 1 and gen.attempts == 1
    assert gen.provider_state.get("outcome_unknown")  # counted as an unknown outcome
    assert gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


def test_the_simulator_walks_the_sdk_s_job_statuses_in_order(sim, post, scheduled_checks):
    sim.job_duration = 1.0
    make_model()
    post()
    gen = Generation.objects.get()
    assert gen.provider_state["status"] == "pending"  # the create reply, at t=0
    drive_checks(scheduled_checks, timeout=10, max_sleep=0.1)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    (job,) = sim.jobs.values()
    history = [h["status"] for h in sim._job(job)["statusHistory"]]
    assert history == [name for name, _ in WALK] + ["success"]
    assert history[:5] == ["pending", "queued", "warming-up", "in-progress", "finalizing"]


def test_slow_replies_within_the_timeout_still_complete_with_one_job(sim, settings, post):
    settings.EASEL_PROVIDER_TIMEOUT = 2.0
    sim.faults.latency = 0.4  # every reply: the create POST, the poll, the asset, the bytes
    make_model()
    post()
    gen = Generation.objects.get()
    assert gen.status == S.COMPLETED, gen.error
    assert len(sim.submissions()) == 1 and len(sim.jobs) == 1
