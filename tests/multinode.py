"""Test equipment for tests/test_multinode.py: process-group spawn/kill, a private
redis-server (restartable without touching anyone else's), and client threads that drive the
home form and the gallery through haproxy and keep every request's outcome and node."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid

import httpx

from tests.procs import ROOT, _wait_group_gone


def _group_kill(proc, sig=signal.SIGKILL):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    if proc:
        _wait_group_gone(proc.pid)


def _spawn(args, log, env):
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_http(url, ok=(200,), timeout=40.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


class Redis:
    def __init__(self, port, folder):
        self.port, self.folder, self.proc = port, folder, None

    def start(self):
        # appendonly: the queue survives the restart, as a broker with persistence does.
        self.proc = _spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
            ],
            self.folder / "redis.log",
            dict(os.environ),
        )
        import redis

        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("private redis did not start")

    def stop(self):
        _group_kill(self.proc, signal.SIGTERM)


def _wait_in_flight(log_path, timeout=5.0) -> bool:
    """Until the worker's log shows a task received and not yet finished (so the kill hits
    work in progress); False if none was seen within the timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = log_path.read_text(errors="replace")
        got = set(re.findall(r"\[([0-9a-f-]{36})\] received", text))
        done = set(re.findall(r"\[([0-9a-f-]{36})\] (?:succeeded|failed|raised|retry)", text))
        if got - done:
            return True
        time.sleep(0.02)
    return False


class Load:
    """Client threads through haproxy: the home form's POST and the gallery, every outcome kept."""

    def __init__(self, base, cookies, t0):
        self.base, self.cookies, self.t0 = base, cookies, t0
        self.events: list[tuple[float, str, str, object]] = []  # (t, what, node, status/error)
        self.accepted: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _record(self, what, response=None, error=None):
        node = response.headers.get("X-Node", "?") if response is not None else "-"
        outcome = response.status_code if response is not None else type(error).__name__
        with self.lock:
            self.events.append((round(time.monotonic() - self.t0, 2), what, node, outcome))

    def run(self, n):
        with httpx.Client(base_url=self.base, cookies=self.cookies, timeout=15) as client:
            while not self.stop.is_set():
                try:
                    page = client.get("/")
                    self._record("GET /", page)
                    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                    if page.status_code == 200 and token:
                        posted = client.post(
                            "/",
                            data={
                                "csrfmiddlewaretoken": token.group(1),
                                "model": "local-sketch",
                                "prompt": f"multinode {n} {uuid.uuid4().hex[:6]}",
                                "num_images": "1",
                                "idempotency_key": uuid.uuid4().hex,
                            },
                        )
                        self._record("POST /", posted)
                        new = re.search(r"new=([\w-]+)", posted.headers.get("location", ""))
                        if posted.status_code == 302 and new:
                            with self.lock:
                                self.accepted.append(new.group(1))
                    self._record("GET /gallery/", client.get("/gallery/"))
                except httpx.HTTPError as exc:
                    self._record("request", error=exc)
                time.sleep(0.3)

    def failures(self):
        return [e for e in self.events if not (isinstance(e[3], int) and e[3] < 400)]
