"""Issue 16: /healthz and /readyz, and /readyz turning red when a dependency is on a dead port."""

from __future__ import annotations

import pytest


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
