"""A star costs what one row costs (issue 14): it recounts nothing for the gallery's other
filters, and a recount that many requests want at once is computed once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from generator import counters
from generator.models import Generation, GenerationQuerySet

pytestmark = pytest.mark.django_db
S = Generation.Status


@pytest.fixture
def history(owner, make_generation):
    """Settled rows (finished before today) plus one of today's."""
    old = timezone.now() - timedelta(days=3)
    rows = [make_generation(owner, prompt=f"old {i}") for i in range(5)]
    Generation.objects.filter(pk__in=[g.pk for g in rows]).update(created_at=old, finished_at=old)
    return [*rows, make_generation(owner, prompt="today")]


@pytest.fixture
def counted(monkeypatch):
    """How many status_counts() ran over settled rows (the expensive, cached part)."""
    calls = []
    real = GenerationQuerySet.status_counts

    def spy(self):
        calls.append(
            "settled" if "finished_at" in str(self.query) and "NOT" in str(self.query) else "recent"
        )
        return real(self)

    monkeypatch.setattr(GenerationQuerySet, "status_counts", spy)
    return calls


def test_a_star_recounts_no_settled_rows_for_the_unstarred_gallery(owner_client, history, counted):
    owner_client.get("/gallery/")
    assert counted.count("settled") == 1
    owner_client.post(f"/gallery/{history[0].public_id}/star/", {"favorite": "1"})
    page = owner_client.get("/gallery/").content.decode()
    assert counted.count("settled") == 1  # kept: a star changes no status count here
    assert "★" in page  # the page itself was made anew (the card shows the star)


def test_the_starred_filter_counts_follow_each_star(owner_client, history):
    def starred_total() -> int:
        page = owner_client.get("/gallery/?starred=1")
        counts = {c["value"]: c["count"] for c in page.context["status_counts"]}
        return counts[""]

    assert starred_total() == 0
    owner_client.post(f"/gallery/{history[0].public_id}/star/", {"favorite": "1"})
    assert starred_total() == 1
    owner_client.post(f"/gallery/{history[1].public_id}/star/", {"favorite": "1"})
    owner_client.post(f"/gallery/{history[0].public_id}/star/", {"favorite": "0"})
    assert starred_total() == 1


def test_while_one_request_recounts_the_others_serve_the_previous_value():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    key, counter = "derived:test", "counter:test"
    assert counters.cached(key, [counter], compute) == 1
    counters.bump_key(counter)  # the value is out of date now
    cache.add(f"{key}:computing", 1, 10)  # another request is recomputing it
    assert counters.cached(key, [counter], compute) == 1  # served the previous value
    assert calls == [1]
    cache.delete(f"{key}:computing")
    assert counters.cached(key, [counter], compute) == 2  # recomputed once it is free
