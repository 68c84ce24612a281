"""Issue 16: 50 connections that open and send nothing leave a real gunicorn answering."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.procs import ROOT, test_database_url
from tests.test_embedded import free_port


@pytest.mark.django_db(transaction=True)  # the log-in page reads the database (allauth's SSO apps)
def test_fifty_idle_sockets_do_not_stall_pages(tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        EASEL_VAR_DIR=str(tmp_path / "var"),
        EASEL_ENV_FILE="",
        DATABASE_URL=test_database_url(),
    )
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    idle = []
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        for _ in range(50):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        for _ in range(10):
            response = httpx.get(base + "/accounts/login/", timeout=3)
            assert response.status_code == 200, (tmp_path / "gunicorn.log").read_text()[-2000:]
    finally:
        for s in idle:
            s.close()
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
