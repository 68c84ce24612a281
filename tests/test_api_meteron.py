"""The Meteron-compatible API (issue #17): seeds 000/001's calls against Easel."""

from __future__ import annotations

import pytest
import requests

from accounts.models import ApiKey
from generator.models import Generation, UsageEntry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _short_wait(settings):
    # The test client runs on_commit callbacks after the view returns, so a sync wait there
    # could only time out; the live-server test below shows the wait itself.
    settings.EASEL_API_SYNC_TIMEOUT = 0


URL = "/api/images/generations"


@pytest.fixture
def personal(owner):
    return ApiKey.issue(owner, "mine")[1]


@pytest.fixture
def service(staff):
    return ApiKey.issue(staff, "roomfix", ApiKey.Kind.SERVICE)[1]


def auth(token, **headers):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}", **{f"HTTP_{k}": v for k, v in headers.items()}}


def generate(client, token, capture, body=None, **headers):
    headers.setdefault("X_MODEL", "local-sketch")
    with capture(execute=True):
        return client.post(
            URL,
            body or {"prompt": "futuristic city"},
            content_type="application/json",
            **auth(token, **headers),
        )


def test_a_sync_generation_answers_with_its_images_and_lands_in_the_gallery(
    live_server, owner, personal, local_model, settings
):
    settings.EASEL_API_SYNC_TIMEOUT = 20
    response = requests.post(
        live_server.url + URL,
        json={"prompt": "futuristic city, extra detailed"},
        headers={
            "Authorization": f"Bearer {personal}",
            "X-Model": "local-sketch",
            "X-Async": "false",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed" and body["modelId"] == "local-sketch"
    assert body["outputImages"][0]["imageGenerationId"] == body["id"]
    assert body["outputImages"][0]["url"]
    gen = Generation.objects.get(public_id=body["id"])
    assert gen.user == owner
    assert UsageEntry.objects.filter(generation=gen, kind="charge").exists()


def test_the_idempotency_key_returns_the_first_generation(
    client, personal, local_model, django_capture_on_commit_callbacks
):
    first = generate(
        client, personal, django_capture_on_commit_callbacks, IDEMPOTENCY_KEY="abcdefgh1"
    )
    again = generate(
        client, personal, django_capture_on_commit_callbacks, IDEMPOTENCY_KEY="abcdefgh1"
    )
    assert first.json()["id"] == again.json()["id"]
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(
    "body,headers,status",
    [
        ({"prompt": ""}, {}, 400),
        ({"prompt": "x", "size": "9x9"}, {}, 400),
        ({"prompt": "x"}, {"X_MODEL": "nope"}, 404),
        ({"prompt": "x"}, {"X_MODEL": ""}, 400),
        ({"prompt": "x"}, {"IDEMPOTENCY_KEY": "!"}, 400),
        ({"prompt": "x"}, {"X_USER": "someone-else"}, 403),
    ],
)
def test_bad_input_is_a_4xx_with_a_message_and_creates_nothing(
    client, personal, local_model, django_capture_on_commit_callbacks, body, headers, status
):
    response = generate(client, personal, django_capture_on_commit_callbacks, body, **headers)
    assert response.status_code == status
    assert response.json()["error"]
    assert not Generation.objects.exists()


def test_a_non_json_body_is_a_400(client, personal, local_model):
    r = client.post(
        URL, "{nope", content_type="application/json", **auth(personal, X_MODEL="local-sketch")
    )
    assert r.status_code == 400 and r.json()["error"]


def test_no_key_or_a_revoked_key_is_a_401_at_once(client, owner, local_model):
    key, token = ApiKey.issue(owner, "k")
    assert client.get(URL, **auth(token)).status_code == 200
    key.revoke()
    assert client.get(URL, **auth(token)).status_code == 401
    assert client.get(URL).status_code == 401


def test_service_users_are_separate_and_the_listing_pages_without_gaps(
    client, service, local_model, django_capture_on_commit_callbacks
):
    for _ in range(7):
        generate(
            client, service, django_capture_on_commit_callbacks, X_USER="alice", X_ASYNC="true"
        )
    generate(client, service, django_capture_on_commit_callbacks, X_USER="bob", X_ASYNC="true")
    # Seed 000's loop, base URL and key changed only.
    url = f"{URL}?model=local-sketch&pageSize={3}&user=alice"
    seen, page_token = [], ""
    while True:
        response = client.get(url + f"&pageToken={page_token}", **auth(service)).json()
        seen.extend(response.get("results", []))
        page_token = response["pagination"].get("nextPageToken", "")
        if not page_token:
            break
    ids = [r["id"] for r in seen]
    alice = Generation.objects.filter(user__external_id="alice")
    assert sorted(ids) == sorted(alice.values_list("public_id", flat=True))
    assert len(ids) == len(set(ids)) == 7
    # Seed 001's query: only that user's completed ones.
    Generation.objects.filter(pk=alice.first().pk).update(status="failed")
    done = client.get(
        f"{URL}?user=alice&model=local-sketch&status=completed", **auth(service)
    ).json()
    assert {r["status"] for r in done["results"]} == {"completed"}
    assert len(done["results"]) == 6


def test_another_users_generation_is_a_404(
    client, owner, stranger, service, local_model, django_capture_on_commit_callbacks
):
    gen_id = generate(client, service, django_capture_on_commit_callbacks, X_USER="alice").json()[
        "id"
    ]
    assert client.get(f"{URL}?id={gen_id}&user=alice", **auth(service)).status_code == 200
    assert client.get(f"{URL}?id={gen_id}&user=bob", **auth(service)).status_code == 404
    _, theirs = ApiKey.issue(stranger, "s")
    assert client.get(f"{URL}?id={gen_id}", **auth(theirs)).status_code == 404
    _, other_service = ApiKey.issue(owner, "other", ApiKey.Kind.SERVICE)
    assert client.get(f"{URL}?id={gen_id}&user=alice", **auth(other_service)).status_code == 404
    assert client.get(f"{URL}?id={gen_id}", **auth(other_service)).status_code == 404


def test_a_service_user_at_its_daily_limit_gets_429_and_remaining_says_so(
    client, service, local_model, django_capture_on_commit_callbacks
):
    local_model.daily_image_limit = 1
    local_model.save()
    assert (
        generate(client, service, django_capture_on_commit_callbacks, X_USER="al").status_code
        == 202  # accepted; the wait is shown over a live server
    )
    refused = generate(client, service, django_capture_on_commit_callbacks, X_USER="al")
    assert refused.status_code == 429 and "limit" in refused.json()["error"].lower()
    assert Generation.objects.count() == 1  # nothing created, nothing sent
    left = client.get("/api/remaining/generations?model=local-sketch&user=al", **auth(service))
    assert left.json()["remaining"] == 0
    fresh = client.get("/api/remaining/generations?model=local-sketch&user=new", **auth(service))
    assert fresh.json()["remaining"] == 1


@pytest.mark.parametrize(
    "query", ["pageSize=0", "pageSize=201", "pageSize=x", "pageToken=forged", "status=bogus"]
)
def test_bad_listing_parameters_are_a_400(client, personal, query):
    response = client.get(f"{URL}?{query}", **auth(personal))
    assert response.status_code == 400 and response.json()["error"]


def test_keys_are_rate_limited_per_key(client, personal, settings, owner):
    settings.EASEL_API_RATE_LIMIT = 2
    _, other = ApiKey.issue(owner, "other")
    assert [client.get(URL, **auth(personal)).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get(URL, **auth(other)).status_code == 200


@pytest.mark.parametrize(
    "tier, asked, expected",
    [
        ("medium", "high", 5),  # capped: a user cannot ask above their own tier
        ("medium", "low", 8),  # asking lower is allowed
        ("high", "high", 2),
        ("high", None, 2),  # no header: the user's tier
        ("low", "urgent", 8),  # unknown value: the user's tier
    ],
)
def test_x_priority_is_capped_by_the_users_tier(
    client, owner, local_model, django_capture_on_commit_callbacks, tier, asked, expected
):
    owner.priority = tier
    owner.save()
    token = ApiKey.issue(owner, "p")[1]
    headers = {"X_PRIORITY": asked} if asked else {}
    response = generate(client, token, django_capture_on_commit_callbacks, **headers)
    assert response.status_code in (200, 202), response.content
    assert Generation.objects.get().priority == expected


def test_an_unknown_or_disabled_model_is_a_404_and_a_missing_one_a_400(
    client, personal, local_model, django_capture_on_commit_callbacks
):
    unknown = generate(client, personal, django_capture_on_commit_callbacks, X_MODEL="no-such")
    assert unknown.status_code == 404 and unknown.json()["error"] == "Unknown model 'no-such'."
    local_model.enabled = False
    local_model.save()
    disabled = generate(client, personal, django_capture_on_commit_callbacks)
    assert disabled.status_code == 404
    missing = generate(client, personal, django_capture_on_commit_callbacks, X_MODEL="")
    assert missing.status_code == 400 and "X-Model" in missing.json()["error"]
    # The OpenAI dialect answers in its own envelope.
    for model, status in (("no-such", 404), ("", 400)):
        answer = client.post(
            "/v1/images/generations", {"model": model, "prompt": "a fox"},
            content_type="application/json", **auth(personal),
        )  # fmt: skip
        assert answer.status_code == status
        assert answer.json()["error"]["code"] == "model_not_found"
        assert answer.json()["error"]["param"] == "model"
    assert not Generation.objects.exists()
