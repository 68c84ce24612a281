"""Issue 16: 50 connections that open and send nothing leave a real gunicorn answering."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.procs import gunicorn
from tests.test_embedded import free_port


@pytest.mark.django_db(transaction=True)  # the log-in page reads the database (allauth's SSO apps)
def test_fifty_idle_sockets_do_not_stall_pages(tmp_path):
    idle = []
    with gunicorn(tmp_path, free_port()) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        try:
            for _ in range(50):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(0.5)
            for _ in range(10):
                response = httpx.get(base + "/accounts/login/", timeout=3)
                assert response.status_code == 200, (tmp_path / "gunicorn.log").read_text()[-2000:]
        finally:
            for s in idle:
                s.close()
