"""What a provider says is left (Meteron's remaining), off the request path (issue 14): a page
reads the cache only and asks a worker to look it up, so a hanging provider never slows it."""

from __future__ import annotations

import pytest

from generator import remaining, views
from generator.models import AIModel
from tests.simulators.meteron import API_KEY, MeteronSimulator

pytestmark = pytest.mark.django_db


class _Reports:
    calls = 0

    def remaining(self, tag, remote_id):
        type(self).calls += 1
        return {"remaining": 4, "remainingThisMonth": 40}


class _Broken:
    def remaining(self, tag, remote_id):
        raise OSError("provider down")


def test_it_asks_the_provider_once_and_keeps_the_answer(monkeypatch, owner, local_model):
    monkeypatch.setattr(remaining.providers, "get_provider_class", lambda name: _Reports)
    assert views._provider_remaining(owner, local_model) == 4  # tasks run eagerly in tests
    assert views._provider_remaining(owner, local_model) == 4
    assert _Reports.calls == 1


def test_a_provider_that_fails_or_cannot_tell_is_unknown(monkeypatch, owner, local_model):
    monkeypatch.setattr(remaining.providers, "get_provider_class", lambda name: _Broken)
    assert views._provider_remaining(owner, local_model) is None
    monkeypatch.setattr(remaining.providers, "get_provider_class", lambda name: object)
    assert views._provider_remaining(owner, local_model) is None


def test_a_hanging_meteron_never_holds_the_prompt_page(owner_client, owner, settings, monkeypatch):
    with MeteronSimulator() as sim:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "meteron": {"api_key": API_KEY, "base_url": sim.url},
        }
        sim.daily_limit = 7
        model = AIModel.objects.create(
            slug="sd", name="SD", provider="meteron", remote_id="stable-diffusion"
        )
        sim.faults.set(hang=3.0, only=r"^/api/remaining/")
        asked = []
        monkeypatch.setattr(remaining.refresh_remaining, "delay", lambda *a: asked.append(a))
        for _ in range(3):
            page = owner_client.get("/")
            assert page.status_code == 200 and "left at Meteron" not in page.content.decode()
        # The page asked a worker once, and never the provider itself.
        assert asked == [(model.pk, owner.pk)]
        assert not sim.received("GET", r"^/api/remaining/")
        # The worker's lookup (here, in-process) fills the cache; the page shows it.
        sim.faults.set(hang=0.0)
        remaining.refresh_remaining(model.pk, owner.pk)
        assert "7 left at Meteron" in owner_client.get("/").content.decode()
        assert views._provider_remaining(owner, model) == 7
