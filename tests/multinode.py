"""Test equipment for tests/test_multinode.py: process-group spawn/kill, and client threads
that sign in, drive the home form and the gallery through haproxy and keep every request's
outcome, node and phase (which fault was under way). The private services are in
tests/multinode_services.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter

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


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def sign_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    page = client.get("/accounts/login/")
    token = CSRF.search(page.text)
    if page.status_code != 200 or not token:
        return page
    return client.post(
        "/accounts/login/",
        data={"csrfmiddlewaretoken": token.group(1), "login": email, "password": password},
    )


def submit(client: httpx.Client, prompt: str, model: str = "counting-sim"):
    """The home form's GET and POST: (responses, the new generation's public id or None)."""
    page = client.get("/")
    token = CSRF.search(page.text)
    if page.status_code != 200 or not token:
        return [page], None
    posted = client.post(
        "/",
        data={
            "csrfmiddlewaretoken": token.group(1),
            "model": model,
            "prompt": prompt,
            "num_images": "1",
            "size": "64x64",
            "idempotency_key": uuid.uuid4().hex,
        },
    )
    new = re.search(r"new=([\w-]+)", posted.headers.get("location", ""))
    return [page, posted], (new.group(1) if posted.status_code == 302 and new else None)


class Load:
    """Client threads through haproxy, one person each: sign in, then the home form's POST and
    the gallery, signing in afresh every few rounds; every outcome kept with its node and the
    phase the test had set (`load.phase`)."""

    ROUNDS_PER_SESSION = 6

    def __init__(self, base, users, password, t0):
        self.base, self.users, self.password, self.t0 = base, users, password, t0
        self.wall0 = time.time() - (time.monotonic() - t0)  # load.now() 0 as a Unix time
        self.phase = "steady"
        self.events: list[tuple[float, str, str, str, object]] = []  # t, phase, what, node, outcome
        self.accepted: list[tuple[float, str]] = []  # (t, public id) of each 302
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def _record(self, what, response=None, error=None):
        # haproxy's own answers (no server up) carry no X-Node.
        node = response.headers.get("X-Node", "haproxy") if response is not None else "-"
        outcome = response.status_code if response is not None else type(error).__name__
        with self.lock:
            self.events.append((self.now(), self.phase, what, node, outcome))

    def _round(self, client, n):
        responses, new = submit(client, f"multinode {n} {uuid.uuid4().hex[:6]}")
        for what, r in zip(("GET /", "POST /"), responses, strict=False):
            self._record(what, r)
        if new:
            with self.lock:
                self.accepted.append((self.now(), new))
        self._record("GET /gallery/", client.get("/gallery/"))

    def run(self, n):
        while not self.stop.is_set():
            with httpx.Client(base_url=self.base, timeout=15) as client:
                try:
                    signed = sign_in(client, self.users[n], self.password)
                    self._record("sign-in", signed)
                    if signed.status_code != 302:
                        time.sleep(0.3)
                        continue
                    for _ in range(self.ROUNDS_PER_SESSION):
                        if self.stop.is_set():
                            break
                        self._round(client, n)
                        time.sleep(0.3)
                except httpx.HTTPError as exc:
                    self._record("request", error=exc)
                    time.sleep(0.3)

    def failures(self):
        return [e for e in self.events if not (isinstance(e[4], int) and e[4] < 400)]

    def failures_by_phase(self) -> dict[str, dict[str, int]]:
        """{phase: {"<what> <node> <outcome>": count}}, the report's attribution."""
        out: dict[str, Counter] = {}
        for _, phase, what, node, outcome in self.failures():
            out.setdefault(phase, Counter())[f"{what} node={node} {outcome}"] += 1
        return {phase: dict(c) for phase, c in out.items()}

    def first_accepted_after(self, t: float) -> float | None:
        with self.lock:
            later = [when for when, _ in self.accepted if when >= t]
        return min(later) if later else None
