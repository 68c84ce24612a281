"""`meteron_sync` without --user (issue 13): Meteron's documented listing item names no user
(seed 001: id, modelId, serverId, status, outputImages), so whatever cannot be attributed is
reported, counted and by id, with the way to import it — never skipped in silence."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from generator.models import AIModel, Generation
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(settings):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        yield simulator


@pytest.fixture
def model(db):
    return AIModel.objects.create(
        slug="sd", name="SD", provider="meteron", remote_id="stable-diffusion"
    )


def run(*args) -> str:
    out = StringIO()
    call_command("meteron_sync", *args, stdout=out)
    return out.getvalue()


def test_without_user_fields_nothing_is_imported_and_every_id_is_named(sim, model, owner):
    ids = sim.add_history(owner.public_id, "stable-diffusion", 3)
    out = run()
    assert not Generation.objects.exists()
    assert "3 without a matching user" in out
    assert "Not imported: 3 completed Meteron generation(s) say nothing about their user" in out
    assert all(job_id in out for job_id in ids)
    assert "--user EMAIL_OR_PUBLIC_ID" in out
    # Following the advice imports them.
    assert "3 imported" in run("--user", owner.email)
    assert Generation.objects.for_user(owner).count() == 3


def test_a_tag_that_is_nobody_here_is_named_with_its_ids(sim, model, owner):
    sim.legacy_fields = True  # the 2023 SDK's items carry `user`
    mine = sim.add_history(owner.public_id, "stable-diffusion", 1)
    ghosts = sim.add_history("ghost@elsewhere.example", "stable-diffusion", 12)
    out = run()
    assert Generation.objects.get().provider_job_id == mine[0]
    line = next(x for x in out.splitlines() if "ghost@elsewhere.example" in x)
    assert "12 completed Meteron generation(s) tagged 'ghost@elsewhere.example'" in line
    assert sum(job_id in line for job_id in ghosts) == 10 and "and 2 more" in line


def test_an_imported_generation_keeps_only_the_models_result_entries(sim, model, owner):
    sim.controlnet_models = {"stable-diffusion"}
    model.params = {"output_images": [1]}
    model.save()
    (job_id,) = sim.add_history(owner.public_id, "stable-diffusion", 1)
    run("--user", owner.public_id)
    (image,) = Generation.objects.get().images.all()
    assert image.provider_url.startswith(f"{sim.url}/r2/{job_id}/1?")
