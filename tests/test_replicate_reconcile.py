"""Issue 13 on Replicate: a create whose reply is lost is never sent again; Easel looks for the
prediction in `GET /v1/predictions` (created_after, cursor pages) by the exact input it sent,
and finishes the generation from it, or fails it with a readable reason (refunded).
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from generator.models import AIModel, Generation, UsageEntry
from tests import test_provider_replicate as contract
from tests.simulators.replicate import iso

pytestmark = pytest.mark.django_db
S = Generation.Status
VERSION = contract.VERSION
sim, configured = contract.sim, contract.configured  # the contract tests' fixtures
CREATE = r"^/v1/predictions$"


def model(**params) -> AIModel:
    # No seed input: two generations with the same prompt send the very same input.
    return contract.make_model(params=params, seed=False)


def submit(client, capture, prompt="a lighthouse at dusk") -> Generation:
    data = {"model": "sdxl", "prompt": prompt, "size": "768x768", "num_images": "1"}
    with capture(execute=True):
        assert client.post("/", {**data, "idempotency_key": ""}).status_code == 302
    gen = Generation.objects.latest("created_at")
    return gen


def kinds(gen) -> list[str]:
    return sorted(UsageEntry.objects.filter(generation=gen).values_list("kind", flat=True))


def direct_create(sim, prompt: str) -> str:
    """A prediction made at Replicate by someone else with the same token (another app)."""
    body = {"version": VERSION, "input": {"prompt": prompt, "width": 768, "height": 768}}
    reply = httpx.post(
        f"{sim.url}/v1/predictions", json=body, headers={"Authorization": f"Bearer {sim.token}"}
    )
    return reply.json()["id"]


def test_a_create_reply_slower_than_the_read_is_found_in_the_list_and_completes(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # Prefer: wait=1 reads for 1 + 2 s; Replicate creates and runs the prediction at once but
    # the reply takes longer than that. Meanwhile two newer predictions push Easel's to page 2.
    model(wait=1)
    sim.reply_delay, sim.page_size = 3.5, 2
    others = [threading.Timer(1.0, direct_create, (sim, f"other {n}")) for n in range(2)]
    for other in others:
        other.start()
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    for other in others:
        other.join()
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert len(sim.received("POST", CREATE)) == 3  # Easel's one and the two others
    first, second = sim.received("GET", r"^/v1/predictions$")
    assert first.query["created_after"].endswith("Z") and second.query["cursor"] == "2"
    assert gen.images.count() == 1 and kinds(gen) == ["charge"]


def test_with_nothing_to_find_in_any_page_the_generation_fails_refunded(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model()
    sim.page_size = 2
    for n in range(3):
        direct_create(sim, f"another prompt {n}")
    sim.faults.set(reset=True, times=1, only=CREATE)  # the first create: no reply at all
    gen = submit(owner_client, django_capture_on_commit_callbacks, prompt="another prompt 9")
    gen.refresh_from_db()
    # The reset came before the simulator handled the request: there is nothing to find.
    assert gen.status == S.FAILED and "not sent again" in gen.error
    assert kinds(gen) == ["charge", "refund"]
    assert len(sim.received("GET", r"^/v1/predictions$")) == 2  # 3 others: two pages
    assert len(sim.received("POST", CREATE)) == 4  # three others, one from Easel


def test_a_prediction_made_before_the_send_is_not_taken_for_it(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model(wait=1)
    old = direct_create(sim, "a lighthouse at dusk")  # same input, but ten minutes ago
    with sim.lock:
        sim.predictions[old]["_created"] -= 600
        sim.predictions[old]["created_at"] = iso(sim.predictions[old]["_created"])
    sim.reply_delay = 3.5
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert len(sim.received("POST", CREATE)) == 2  # the old one, then Easel's one
    # The one found is Easel's own (the old one completed ten minutes ago with another image).
    ours = [p for p in sim.predictions if p != old]
    assert [i.provider_url for i in gen.images.all()] == sim.predictions[ours[0]]["output"]


def test_two_predictions_with_the_same_input_are_ambiguous_and_fail_readably(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model(wait=1)
    direct_create(sim, "a lighthouse at dusk")  # identical input, just now
    sim.reply_delay = 3.5
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    gen.refresh_from_db()
    assert gen.status == S.FAILED
    assert "did not answer within 3 s" in gen.error and "not sent again" in gen.error
    assert kinds(gen) == ["charge", "refund"]
    assert len(sim.received("POST", CREATE)) == 2


@pytest.mark.parametrize(
    "reply", [b"{not json", b'{"status": "starting"}'], ids=["not-json", "no-id"]
)
def test_a_2xx_reply_that_cannot_be_read_is_never_resent_and_is_reconciled(
    owner_client, configured, sim, django_capture_on_commit_callbacks, reply
):
    model()
    sim.reply_override = reply  # Replicate created the prediction; its reply is broken
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert len(sim.received("POST", CREATE)) == 1 and gen.attempts == 1


def test_a_500_to_the_create_is_not_resent(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # replicate-python never retries a POST; only a 503 says the request was refused.
    model()
    sim.faults.set(status=500, times=1, only=CREATE)
    gen = submit(owner_client, django_capture_on_commit_callbacks)
    gen.refresh_from_db()
    assert gen.status == S.FAILED and "server error (500)" in gen.error
    assert "not sent again" in gen.error and kinds(gen) == ["charge", "refund"]
    assert len(sim.received("POST", CREATE)) == 1


def test_slow_replies_still_complete_at_the_provider(configured, sim):
    sim.reply_delay = 1.5
    body = {"version": VERSION, "input": {"prompt": "x"}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{sim.url}/v1/predictions",
            json=body,
            headers={"Authorization": f"Bearer {sim.token}"},
            timeout=0.5,
        )
    time.sleep(0.1)
    ((pid, prediction),) = sim.predictions.items()
    listing = httpx.get(
        f"{sim.url}/v1/predictions", headers={"Authorization": f"Bearer {sim.token}"}
    ).json()
    assert [p["id"] for p in listing["results"]] == [pid] and listing["next"] is None
    assert prediction["status"] in ("starting", "processing", "succeeded")
