"""The OpenAI-compatible images endpoint (issue #17), over a live server."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from accounts.models import ApiKey
from generator.models import Generation

URL = "/v1/images/generations"


@pytest.fixture
def key(owner):
    return ApiKey.issue(owner, "sdk")[1]


def post(live_server, key, body):
    return requests.post(
        live_server.url + URL, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.mark.django_db(transaction=True)
def test_b64_json_returns_a_decodable_image_in_the_owners_gallery(
    live_server, owner, key, local_model, settings
):
    settings.EASEL_API_SYNC_TIMEOUT = 20
    r = post(
        live_server,
        key,
        {"model": "local-sketch", "prompt": "a fox", "response_format": "b64_json", "user": "x"},
    )
    assert r.status_code == 200, r.content
    data = r.json()["data"]
    Image.open(io.BytesIO(base64.b64decode(data[0]["b64_json"]))).verify()
    assert Generation.objects.get().user == owner


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body,status,param",
    [
        ({"model": "nope", "prompt": "x"}, 404, "model"),
        ({"model": "local-sketch", "prompt": ""}, 400, "prompt"),
        ({"model": "local-sketch", "prompt": "x", "n": 99}, 400, "n"),
        (
            {"model": "local-sketch", "prompt": "x", "response_format": "gif"},
            400,
            "response_format",
        ),
    ],
)
def test_bad_input_uses_openais_error_envelope(live_server, key, local_model, body, status, param):
    r = post(live_server, key, body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["message"] and error["param"] == param and error["type"]
    assert not Generation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_user_at_the_daily_limit_gets_429_with_retry_after(live_server, key, local_model):
    local_model.daily_image_limit = 0
    local_model.save()
    r = post(live_server, key, {"model": "local-sketch", "prompt": "x"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert not Generation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_a_401(live_server, owner, local_model):
    k, token = ApiKey.issue(owner, "x")
    k.revoke()
    assert post(live_server, token, {"model": "local-sketch", "prompt": "x"}).status_code == 401
