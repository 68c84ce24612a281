"""The ops commands: addmodel (idempotent model set-up), meteron_sync (recover and import),
and the admin's "check connection" action."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generator.models import AIModel, Generation
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- addmodel ---------------------------------------------------------------------------------


def test_addmodel_creates_a_model_with_json_parsed_options():
    out = run(
        "addmodel",
        "sd-meteron",
        "--provider",
        "meteron",
        "--remote-id",
        "stable-diffusion",
        "--name",
        "Stable Diffusion",
        "--option",
        "max_images=2",
        "--option",
        'sizes=["512x512","768x768"]',
        "--option",
        "negative_prompt=true",
        "--option",
        "label=plain text",
        "--param",
        "async=false",
    )
    model = AIModel.objects.get(slug="sd-meteron")
    assert "Created model sd-meteron" in out
    assert (model.provider, model.remote_id, model.name) == (
        "meteron",
        "stable-diffusion",
        "Stable Diffusion",
    )
    assert model.options == {
        "max_images": 2,
        "sizes": ["512x512", "768x768"],
        "negative_prompt": True,
        "label": "plain text",
    }
    assert model.params == {"async": False}
    assert model.max_images == 2 and model.enabled


def test_addmodel_is_idempotent_and_updates_in_place():
    args = (
        "addmodel",
        "flux",
        "--provider",
        "scenario",
        "--remote-id",
        "model_a",
        "--option",
        "max_images=4",
    )
    run(*args)
    assert "Unchanged model flux" in run(*args)
    assert "Updated model flux" in run(
        "addmodel",
        "flux",
        "--provider",
        "scenario",
        "--remote-id",
        "model_b",
        "--option",
        "seed=false",
    )
    model = AIModel.objects.get(slug="flux")
    assert AIModel.objects.filter(slug="flux").count() == 1
    assert model.remote_id == "model_b"
    assert model.options == {"max_images": 4, "seed": False}  # earlier options kept
    assert model.name == "flux"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--provider", "dalle-magic", "--remote-id", "x"), "Unknown provider 'dalle-magic'"),
        (("--provider", "local", "--remote-id", "x", "--option", "novalue"), "is not KEY=VALUE"),
    ],
)
def test_addmodel_refuses_bad_input_and_saves_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("addmodel", "bad", *args)
    assert not AIModel.objects.filter(slug="bad").exists()


def test_addmodel_refuses_a_bad_slug():
    with pytest.raises(CommandError, match="not a valid slug"):
        run("addmodel", "Not A Slug", "--provider", "local", "--remote-id", "x")


# --- meteron_sync -----------------------------------------------------------------------------


@pytest.fixture
def sim(settings):
    with MeteronSimulator() as simulator:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": simulator.url},
        }
        yield simulator


@pytest.fixture
def meteron_model(db):
    return AIModel.objects.create(
        slug="sd",
        name="SD",
        provider="meteron",
        remote_id="stable-diffusion",
        params={"async": True},
    )


def test_meteron_sync_imports_a_users_history_once(sim, owner, stranger, meteron_model):
    sim.add_history(owner.public_id, "stable-diffusion", 3, prompt="my old castle")
    sim.add_history(stranger.public_id, "stable-diffusion", 2)
    sim.add_history(owner.public_id, "another-model", 4)
    out = run("meteron_sync", "--user", owner.email)
    mine = Generation.objects.for_user(owner)
    assert mine.count() == 3
    for gen in mine:
        assert gen.status == Generation.Status.COMPLETED
        assert gen.prompt == "my old castle" and gen.model == meteron_model
        assert gen.provider_job_id.startswith("img_01")
        image = gen.images.get()
        with image.file.open("rb") as fh:  # copied into Easel's storage
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not Generation.objects.for_user(stranger).exists()
    assert "3 imported" in out
    listing = sim.received("GET", r"^/api/images/generations$")
    assert listing[0].query["user"] == owner.public_id
    assert listing[0].query["model"] == "stable-diffusion"
    assert listing[0].query["pageSize"] == "200"
    # A re-run finds everything known and imports nothing again.
    again = run("meteron_sync", "--user", owner.public_id)
    assert Generation.objects.for_user(owner).count() == 3
    assert "0 imported, 3 already known" in again


def test_meteron_sync_pages_through_everyone_and_matches_tags(
    sim, owner, stranger, meteron_model, monkeypatch
):
    from generator.providers import meteron

    monkeypatch.setattr(meteron, "MAX_PAGE_SIZE", 2)  # force several pages
    sim.legacy_fields = True  # items carry `user` (the 2023 SDK's shape) so tags can match
    sim.add_history(owner.public_id, "stable-diffusion", 3)
    sim.add_history(stranger.email, "stable-diffusion", 2)  # tagged by e-mail elsewhere
    sim.add_history("u_nobody_here", "stable-diffusion", 1)
    out = run("meteron_sync", "--model", "sd")
    assert Generation.objects.for_user(owner).count() == 3
    assert Generation.objects.for_user(stranger).count() == 2
    assert "in 3 pages" in out and "5 imported" in out and "1 without a matching user" in out
    tokens = [r.query["pageToken"] for r in sim.received("GET", r"^/api/images/generations$")]
    assert tokens[0] == "" and all(tokens[1:]) and len(tokens) == 3


def test_meteron_sync_recovers_a_generation_whose_reply_was_lost(
    sim, owner, meteron_model, make_generation
):
    (job_id,) = sim.add_history(owner.public_id, "stable-diffusion", 1)
    lost = make_generation(
        owner, model=meteron_model, status=Generation.Status.RUNNING, provider_job_id=job_id
    )
    done_elsewhere = make_generation(owner, model=meteron_model, status=Generation.Status.COMPLETED)
    out = run("meteron_sync")
    lost.refresh_from_db()
    assert lost.status == Generation.Status.COMPLETED
    assert lost.images.count() == 1
    assert Generation.objects.for_user(owner).count() == 2  # recovered, not duplicated
    assert "1 recovered" in out
    assert done_elsewhere.images.count() == 0


def test_meteron_sync_fails_a_lost_generation_that_meteron_failed(
    sim, owner, meteron_model, make_generation
):
    sim.fail_reason = "NSFW filter"
    (job_id,) = sim.add_history(owner.public_id, "stable-diffusion", 1)
    lost = make_generation(
        owner, model=meteron_model, status=Generation.Status.RUNNING, provider_job_id=job_id
    )
    run("meteron_sync")
    lost.refresh_from_db()
    assert lost.status == Generation.Status.FAILED and lost.error == "Meteron: NSFW filter"


def test_meteron_sync_names_an_unknown_user_or_model(sim, meteron_model):
    with pytest.raises(CommandError, match="No user"):
        run("meteron_sync", "--user", "ghost@example.com")
    with pytest.raises(CommandError, match="No Meteron model"):
        run("meteron_sync", "--model", "nope")


def test_meteron_sync_reports_an_unreachable_meteron_readably(sim, meteron_model):
    sim.faults.status = 503
    with pytest.raises(CommandError, match="Meteron listing failed: Meteron had a server error"):
        run("meteron_sync")


# --- admin "check connection" -----------------------------------------------------------------


def test_the_admin_checks_connections_and_never_shows_a_secret(
    sim, client, staff, settings, meteron_model
):
    scenario = AIModel.objects.create(slug="sc", name="Sc", provider="scenario", remote_id="m")
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "scenario": {"api_key": "", "api_secret": "", "base_url": ""},
    }
    client.force_login(staff)
    response = client.post(
        "/admin/generator/aimodel/",
        {"action": "check_connection", "_selected_action": [meteron_model.pk, scenario.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Meteron: Connected to Meteron at 127.0.0.1; the API key was accepted." in page
    assert "Scenario: The scenario provider is not configured on this server." in page
    assert API_KEY not in page
    assert (
        sim.received("GET", r"^/api/images/generations$")[0].header("authorization")
        == f"Bearer {API_KEY}"
    )
    sim.faults.status = 401
    page = client.post(
        "/admin/generator/aimodel/",
        {"action": "check_connection", "_selected_action": [meteron_model.pk]},
        follow=True,
    ).content.decode()
    assert "Meteron refused Easel&#x27;s credentials (401)" in page
    assert API_KEY not in page


# --- make run SIMULATORS=1 --------------------------------------------------------------------


def test_the_simulator_server_prints_env_for_every_provider(capsys):
    from tests.simulators import serve

    assert serve.main(["--print-env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert env["METERON_BASE_URL"] == "http://127.0.0.1:8701"
    assert env["METERON_API_KEY"] == API_KEY
    assert env["SCENARIO_BASE_URL"] == "http://127.0.0.1:8702"
    assert {"SCENARIO_API_KEY", "SCENARIO_API_SECRET"} <= set(env)
    names = {cls.__name__ for cls in serve.discover()}
    assert {"MeteronSimulator", "ScenarioSimulator"} <= names
    assert "CountingSimulator" not in names  # test-only, not a product provider's simulator
