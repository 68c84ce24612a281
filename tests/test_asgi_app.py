"""The ASGI application (config/asgi.py, what uvicorn serves): requests with an API key go
through only the middleware they need; every other path keeps the whole stack. Called in
process, as uvicorn calls it (an ASGI scope, receive and send)."""

from __future__ import annotations

import json
import os

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def application():
    """config.asgi, imported here: it sets defaults for the uvicorn process in os.environ
    (DATABASE_POOL_SIZE), which every server a later test starts would otherwise inherit."""
    saved = dict(os.environ)
    try:
        from config.asgi import application

        yield application
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _call(
    application, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8001),
        "headers": [(b"host", b"localhost")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    talk = ApplicationCommunicator(application, scope)
    await talk.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await talk.receive_output(20)
    body = b""
    while True:
        part = await talk.receive_output(20)
        body += part.get("body", b"")
        if not part.get("more_body"):
            break
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def call(application):
    def call(path: str, **headers: str):
        return async_to_sync(_call)(application, path, headers)

    return call


def test_a_keyed_request_skips_the_pages_middleware_but_keeps_the_security_headers(call, owner):
    token = ApiKey.issue(owner, "asgi")[1]
    status, headers, body = call("/v1/models", Authorization=f"Bearer {token}")
    assert status == 200, body[:300]
    assert json.loads(body)["object"] == "list"
    assert headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware ran
    # No page middleware ran: no framing header, no page CSP, no session or CSRF cookie.
    assert "x-frame-options" not in headers
    assert "content-security-policy" not in headers
    assert "set-cookie" not in headers


def test_a_bad_key_is_still_the_apis_own_401(call, owner):
    status, _, body = call("/api/images/generations", Authorization="Bearer nope")
    assert status == 401
    assert "error" in json.loads(body)


def test_other_paths_keep_the_whole_stack(call):
    status, headers, _ = call("/api/docs/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in headers
