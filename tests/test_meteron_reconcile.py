"""A sync submit whose reply never came (issue 13): the request reached Meteron and is never sent
again; Easel finds the generation in Meteron's listing by user and model — the one made while the
submit was being sent, dated by its ULID id — or, when it cannot tell, fails it readably and
refunds it. The simulator keeps running a request whose client gave up, as Meteron does."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime

import httpx
import pytest

from generator.models import AIModel, Generation, UsageEntry
from generator.providers import get_provider
from generator.providers.base import OutcomeUnknown, Pending
from generator.providers.meteron import MeteronProvider, id_time
from tests.conftest import drive_checks
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db
S = Generation.Status


@pytest.fixture
def sim(settings, monkeypatch):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        # The sync read (600 s in production) shorter than the simulated job.
        monkeypatch.setattr(MeteronProvider, "sync_read_timeout", 0.5)
        yield simulator


@pytest.fixture
def model(db):
    return AIModel.objects.create(
        slug="meteron-sd", name="SD", provider="meteron", remote_id="stable-diffusion"
    )


@pytest.fixture
def post(post_prompt, model):
    return functools.partial(post_prompt, model=model.slug)


def refunded(gen: Generation) -> bool:
    return gen.usage_entries.filter(kind=UsageEntry.Kind.REFUND).exists()


def test_a_slow_sync_reply_is_reconciled_from_the_listing_not_sent_again(
    sim, post, owner_client, owner, scheduled_checks
):
    sim.job_duration = 1.5
    sim.add_history(owner.public_id, "stable-diffusion", 2)  # older ones are never taken for it
    post()
    gen = Generation.objects.get()
    assert gen.status == S.RUNNING, gen.error
    assert "did not answer within 0.5 s" in gen.provider_state["outcome_unknown"]
    (job_id,) = [
        g["id"]
        for g in sim.generations.values()
        if not g["created"] < gen.created_at.timestamp() - 60
    ]
    assert gen.provider_job_id == job_id
    drive_checks(scheduled_checks)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert gen.images.count() == 1 and not refunded(gen)
    assert len(sim.submissions()) == 1  # one POST, ever
    listings = sim.received("GET", r"^/api/images/generations$")
    assert listings and all(
        (r.query["user"], r.query["model"]) == (owner.public_id, "stable-diffusion")
        for r in listings
    )


def test_a_slow_sync_job_that_fails_at_meteron_fails_with_its_reason_and_is_refunded(
    sim, post, owner_client, scheduled_checks
):
    sim.job_duration, sim.fail_reason = 1.0, "CUDA out of memory"
    post()
    drive_checks(scheduled_checks)
    gen = Generation.objects.get()
    assert gen.status == S.FAILED and gen.error == "Meteron: CUDA out of memory"
    assert refunded(gen) and len(sim.submissions()) == 1


def test_two_generations_made_at_that_moment_are_never_guessed_between(
    sim, post, owner_client, owner, scheduled_checks
):
    """Another client (the same user elsewhere) posts to the same model while Easel's request
    hangs: the listing holds two candidates, so Easel does not pick one."""
    sim.job_duration = 1.5

    def other_client():
        httpx.post(
            f"{sim.url}/api/images/generations",
            json={"prompt": "someone else's"},
            headers={
                "Authorization": f"Bearer {API_KEY}",
                "X-Model": "stable-diffusion",
                "X-User": owner.public_id,
                "X-Async": "true",
            },
        )

    timer = threading.Timer(0.1, other_client)
    timer.start()
    post()
    timer.join()
    gen = Generation.objects.get()
    assert gen.status == S.FAILED
    assert "it was not sent again so you are not charged twice" in gen.error
    assert refunded(gen) and not scheduled_checks
    mine = [r for r in sim.submissions() if r.json["prompt"] == "a lighthouse at dusk"]
    assert len(mine) == 1 and len(sim.generations) == 2


def test_a_request_meteron_never_recorded_is_not_found(sim, model, owner, make_generation):
    sim.faults.set(hang=1.0, times=1)  # the request is answered by no generation at all
    sim.add_history(owner.public_id, "stable-diffusion", 1)
    gen = make_generation(owner, model=model, status=S.RUNNING, submitted_at=datetime.now(UTC))
    provider = get_provider("meteron")
    with pytest.raises(OutcomeUnknown):
        provider.submit(gen)
    assert provider.reconcile(gen) is None  # the hour-old generation is not taken for it


def test_a_generation_still_running_is_handed_back_as_pending(sim, model, owner, make_generation):
    sim.job_duration = 3.0
    gen = make_generation(owner, model=model, status=S.RUNNING, submitted_at=datetime.now(UTC))
    provider = get_provider("meteron")
    with pytest.raises(OutcomeUnknown):
        provider.submit(gen)
    result = provider.reconcile(gen)
    assert isinstance(result, Pending)
    assert result.job_id in sim.generations and result.state["status"] in ("pending", "processing")


def test_meteron_ids_are_dated_like_the_documented_examples():
    # seed 001 / meteron.ai/guides/storage: the generation, then its output image 15 s later.
    made = id_time("img_01h0kckk68r0c5d1gt59zzk3ad")
    output = id_time("ima_01h0kcm1f63gmn1c9rpyqg8e3a")
    assert datetime.fromtimestamp(made, UTC).strftime("%Y-%m-%d %H:%M") == "2023-05-16 22:58"
    assert 10 < output - made < 20
    assert id_time("img_sim000001") is None and id_time("img_81h0kckk68r0c5d1gt59zzk3ad") is None
