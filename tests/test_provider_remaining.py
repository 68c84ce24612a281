"""generator.views._provider_remaining: what a provider says is left, best effort, kept briefly."""

from __future__ import annotations

import pytest

from generator import views


class _Reports:
    calls = 0

    def remaining(self, tag, remote_id):
        type(self).calls += 1
        return {"remaining": 4, "remainingThisMonth": 40}


class _Broken:
    def remaining(self, tag, remote_id):
        raise OSError("provider down")


@pytest.mark.django_db
def test_it_asks_the_provider_once_and_keeps_the_answer(monkeypatch, owner, local_model):
    monkeypatch.setattr(views.providers, "get_provider_class", lambda name: _Reports)
    assert views._provider_remaining(owner, local_model) == 4
    assert views._provider_remaining(owner, local_model) == 4
    assert _Reports.calls == 1


@pytest.mark.django_db
def test_a_provider_that_fails_or_cannot_tell_is_unknown(monkeypatch, owner, local_model):
    monkeypatch.setattr(views.providers, "get_provider_class", lambda name: _Broken)
    assert views._provider_remaining(owner, local_model) is None
    monkeypatch.setattr(views.providers, "get_provider_class", lambda name: object)
    assert views._provider_remaining(owner, local_model) is None
