"""Issue 16: a request that fails because PostgreSQL is unreachable (found by
tests/test_multinode.py's restart: 500s from the web nodes before haproxy marked them down) is
a 503 with Retry-After; any other uncaught error stays a 500."""

from __future__ import annotations

import socket

import pytest
from django.db import OperationalError, connection
from django.test import Client

from config import health


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
