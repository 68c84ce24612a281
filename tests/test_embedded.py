"""The embedded default that `make run` starts: SQLite, local disk, kombu's filesystem broker.

Real processes (migrate, runserver, celery worker) on a fresh folder, driven over HTTP as a
person would: sign up through the allauth form, submit a prompt, see it in the gallery.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from tests.procs import ROOT

PASSWORD = "a-Long-pass-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "STORAGE_BACKEND")
    }
    env.update(
        EASEL_VAR_DIR=str(tmp_path / "var"),
        DEBUG="true",
        EASEL_LOCAL_PROVIDER_DELAY="0.5",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    port = free_port()
    log = open(tmp_path / "processes.log", "wb")
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--beat",
                "--concurrency=2",
                f"--schedule={tmp_path / 'beat'}",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/accounts/login/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    yield base, tmp_path / "processes.log"
    for p in procs:
        os.killpg(p.pid, 15)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)


def _csrf(client: httpx.Client, url: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(url).text).group(1)


def _sign_up(base: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10, headers={"Referer": base})
    response = client.post(
        "/accounts/signup/",
        data={
            "csrfmiddlewaretoken": _csrf(client, "/accounts/signup/"),
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.text[:500]
    return client


def test_make_run_defaults_sign_up_generate_and_see_it_within_10_seconds(embedded):
    base, log = embedded
    alice = _sign_up(base, "alice@example.com")
    home = alice.get("/").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', home).group(1)
    response = alice.post(
        "/",
        data={
            "csrfmiddlewaretoken": _csrf(alice, "/"),
            "model": "local-sketch",
            "prompt": "a lighthouse in the fog",
            "size": "512x512",
            "num_images": "1",
            "idempotency_key": key,
        },
    )
    assert response.status_code == 302
    gid = response.headers["Location"].split("new=")[1]

    start, listed = time.monotonic(), ""
    while time.monotonic() - start < 10:
        listed = alice.get("/gallery/?model=local-sketch&status=completed").text
        if f'id="gen-{gid}"' in listed:
            break
        time.sleep(0.25)
    assert f'id="gen-{gid}"' in listed, log.read_text()[-3000:]

    thumb = re.search(rf"/gallery/{gid}/images/0/thumb/", listed).group(0)
    image = Image.open(io.BytesIO(alice.get(thumb).content))
    image.load()
    assert image.format == "WEBP" and image.width > 0
    assert f'id="gen-{gid}"' not in alice.get("/gallery/?status=failed").text

    bob = _sign_up(base, "bob@example.com")
    assert bob.get(f"/gallery/{gid}/").status_code == 404
    assert bob.get(thumb).status_code == 404
