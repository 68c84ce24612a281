"""Issue 16: a request that fails because PostgreSQL is unreachable (found by
tests/test_multinode.py's restart: 500s from the web nodes before haproxy marked them down) is
a 503 with Retry-After; any other uncaught error stays a 500."""

from __future__ import annotations

import socket

import httpx
import pytest
from django.db import OperationalError, connection
from django.test import Client

from config import health
from config.health import API_UNAVAILABLE
from tests.procs import uvicorn
from tests.test_embedded import free_port


def test_a_database_outage_is_a_503_with_retry_after(rf):
    try:
        raise OperationalError('connection to server at "127.0.0.1" failed: Connection refused')
    except OperationalError:
        response = health.server_error(rf.get("/gallery/"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"briefly unavailable" in response.content
    assert b"127.0.0.1" not in response.content  # nothing of the error reaches the page


def test_any_other_error_is_still_a_500(rf):
    try:
        raise ValueError("a bug")
    except ValueError:
        response = health.server_error(rf.get("/"))
    assert response.status_code == 500


@pytest.mark.django_db(transaction=True)
def test_a_page_asked_for_while_postgresql_is_unreachable_is_a_503(settings):
    """A real request through every middleware: the session is read from a database that
    refuses connections (the connection re-pointed at a port nobody listens on)."""
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32  # the session middleware must read the database
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again at once: nothing listens there
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = dead
    try:
        response = client.get("/gallery/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "5"
    assert client.get("/gallery/").status_code == 302  # database back: the usual sign-in redirect


def test_under_uvicorn_an_unreachable_database_is_a_prompt_503_in_each_dialects_shape(tmp_path):
    """uvicorn turns on a connection pool (config/asgi.py). With PostgreSQL unreachable, a
    request waits DATABASE_POOL_TIMEOUT (5 s) for a connection, then gets the outage's 503 with
    Retry-After in its API's own error shape; psycopg_pool's default kept each for 30 s (the
    client below gives up after 20). No test database is involved: nothing listens there."""
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/easel"  # a closed port: nobody listens
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
