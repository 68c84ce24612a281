"""A limit bounds what reaches the provider: a refund only when the provider did no billable work."""

from __future__ import annotations

import pytest

from generator import actions, limits
from generator.errors import StorageError
from generator.models import Generation, UsageEntry
from generator.providers.base import Done, Failed
from generator.tasks import _handle

pytestmark = pytest.mark.django_db


def submit(user, model, n=1):
    data = {"model": model, "prompt": "a lighthouse", "num_images": n, "options": {}}
    with_commit = actions.submit(user, data)
    return with_commit[0]


@pytest.fixture
def limited(local_model):
    local_model.daily_image_limit = 2
    local_model.save()
    return local_model


def running(gen: Generation) -> Generation:
    """What a worker's claim does: the request is on its way to the provider."""
    claimed = Generation.claim(gen.pk, 60)
    assert claimed is not None
    return claimed


def queued_without_dispatch(user, model, monkeypatch):
    from generator import tasks

    monkeypatch.setattr(tasks, "_send", lambda *a, **k: True)
    return submit(user, model)


def test_deleting_a_running_generation_keeps_its_charge(owner_client, owner, limited, monkeypatch):
    gens = [queued_without_dispatch(owner, limited, monkeypatch) for _ in range(2)]
    for gen in gens:
        running(gen)
        assert owner_client.post(f"/gallery/{gen.public_id}/delete/").status_code == 302
    assert not Generation.objects.filter(user=owner).exists()
    # The provider had both: the day's two images are used, a third submission is refused.
    assert limits.allowance(owner, limited).left_today == 0
    with pytest.raises(limits.LimitExceeded):
        submit(owner, limited)
    charges = UsageEntry.objects.filter(user=owner)
    assert [e.kind for e in charges] == ["charge", "charge"]
    assert all(e.reason.startswith("Kept: the provider had already accepted it") for e in charges)
    assert all("Deleted by its owner" in e.reason for e in charges)


def test_canceling_a_queued_generation_refunds_it(owner, limited, monkeypatch):
    gen = queued_without_dispatch(owner, limited, monkeypatch)
    assert actions.cancel(gen, "Canceled by staff.")
    refund = UsageEntry.objects.get(generation=gen, kind="refund")
    assert refund.reason == "Canceled by staff."
    assert limits.allowance(owner, limited).left_today == 2


def test_canceling_an_accepted_job_asks_the_provider_and_keeps_the_charge(
    owner, limited, monkeypatch
):
    from generator import tasks

    gen = running(queued_without_dispatch(owner, limited, monkeypatch))
    Generation.objects.filter(pk=gen.pk).update(provider_job_id="job-1")
    gen.refresh_from_db()
    asked = []
    monkeypatch.setattr(tasks, "cancel_at_provider", lambda g: asked.append(g.provider_job_id))
    monkeypatch.setattr(actions, "cancel_at_provider", tasks.cancel_at_provider)
    assert actions.cancel(gen, "Canceled by its owner.")
    assert asked == ["job-1"]
    assert not UsageEntry.objects.filter(generation=gen, kind="refund").exists()
    assert limits.allowance(owner, limited).left_today == 1


def test_a_refusal_by_the_provider_is_refunded(owner, limited, monkeypatch):
    gen = running(queued_without_dispatch(owner, limited, monkeypatch))
    assert gen.fail("The provider refused the request (400): bad prompt")
    assert UsageEntry.objects.filter(generation=gen, kind="refund").exists()


def test_the_provider_canceling_its_own_job_is_refunded(owner, limited, monkeypatch):
    gen = running(queued_without_dispatch(owner, limited, monkeypatch))
    _handle(gen, None, Failed("The provider canceled the job.", canceled=True), step=0)
    gen.refresh_from_db()
    assert gen.status == "canceled"
    assert UsageEntry.objects.filter(generation=gen, kind="refund").exists()


def test_easel_failing_to_store_what_the_provider_made_keeps_the_charge(
    owner, limited, monkeypatch
):
    from generator import tasks

    gen = running(queued_without_dispatch(owner, limited, monkeypatch))

    def broken(*args):
        raise StorageError("Easel could not store the images.")

    monkeypatch.setattr(tasks, "store_and_complete", broken)
    _handle(gen, None, Done(images=[]), step=0)
    gen.refresh_from_db()
    assert gen.status == "failed" and gen.error == "Easel could not store the images."
    assert not UsageEntry.objects.filter(generation=gen, kind="refund").exists()
    assert "Kept" in UsageEntry.objects.get(generation=gen, kind="charge").reason


def test_a_worker_lost_after_sending_keeps_the_charge(owner, limited, monkeypatch, settings):
    from datetime import timedelta

    from django.utils import timezone

    from generator.tasks import reap_generations

    gen = running(queued_without_dispatch(owner, limited, monkeypatch))
    Generation.objects.filter(pk=gen.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert reap_generations()["failed"] == 1
    assert not UsageEntry.objects.filter(generation=gen, kind="refund").exists()
