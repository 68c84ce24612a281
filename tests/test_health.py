"""Issue 16: /healthz and /readyz, and /readyz turning red when a dependency is on a dead port."""

from __future__ import annotations

import socket

import httpx
import pytest

from config.health import API_UNAVAILABLE
from tests.procs import uvicorn
from tests.test_embedded import free_port


@pytest.mark.django_db
def test_healthz_and_readyz_answer_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
        "storage": "ok",
    }


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_on_a_dead_port(client, settings):
    settings.CELERY_BROKER_URL = "redis://:secret-pw@127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"].startswith("down") and body["checks"]["database"] == "ok"
    assert b"secret-pw" not in response.content


@pytest.mark.django_db
def test_a_load_balancers_check_needs_only_the_database(client, settings):
    """`?need=database`: a node without its broker still serves pages (a submission waits for
    the reaper), so the proxy keeps it; the body still says what is down."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz?need=database")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["broker"].startswith("down")
    assert client.get("/readyz?need=database,broker").status_code == 503
    bad = client.get("/readyz?need=database,<script>")
    assert bad.status_code == 400 and "unknown" in bad.json()["error"]


def test_under_uvicorn_an_unreachable_database_is_a_prompt_503_in_each_dialects_shape(tmp_path):
    """uvicorn turns on a connection pool (config/asgi.py). With PostgreSQL unreachable, a
    request waits DATABASE_POOL_TIMEOUT (5 s) for a connection, then gets the outage's 503 with
    Retry-After in its API's own error shape; psycopg_pool's default kept each for 30 s (the
    client below gives up after 20). No test database is involved: nothing listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again before the server starts: nothing listens
    nowhere = f"postgres://postgres@127.0.0.1:{dead}/easel"
    with uvicorn(tmp_path, free_port(), DATABASE_URL=nowhere) as (base, _):
        key = {"Authorization": "Bearer easel_" + "k" * 43}
        openai = httpx.post(
            f"{base}/v1/images/generations",
            headers=key,
            json={"model": "local-sketch", "prompt": "a lighthouse"},
            timeout=20,
        )
        meteron = httpx.post(
            f"{base}/api/images/generations",
            headers={**key, "X-Model": "local-sketch", "X-User": "u1"},
            json={"prompt": "a lighthouse"},
            timeout=20,
        )
        ready = httpx.get(f"{base}/readyz?need=database", timeout=20)
    assert openai.status_code == 503 and openai.headers["Retry-After"] == "5"
    error = openai.json()["error"]
    assert error["code"] == "database_unavailable" and error["type"] == "server_error"
    assert "database" in error["message"]
    assert meteron.status_code == 503 and meteron.headers["Retry-After"] == "5"
    assert meteron.json() == {"error": API_UNAVAILABLE}
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("down")
