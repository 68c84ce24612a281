"""The provider of tests/test_multinode.py — TEST EQUIPMENT: the counting simulator (a request
log of submissions per generation) that can hold one submission open at the provider until
the test says so, and the pid of the process on the other end of that held request."""

from __future__ import annotations

import re
import subprocess
import threading

from tests.simulators.counting import CountingSimulator

HOLD = "hold at the provider"  # a prompt starting with this is held until release()


class HoldingSimulator(CountingSimulator):
    def __init__(self, **kw):
        self._local = threading.local()
        self.held = threading.Event()
        self._release = threading.Event()
        self.held_peer: tuple[str, int] | None = None
        super().__init__(**kw)

    def _dispatch(self, handler):
        self._local.peer = handler.client_address
        super()._dispatch(handler)

    def create(self, request):
        if str((request.json or {}).get("prompt", "")).startswith(HOLD):
            with self._id_lock:
                self.submissions[request.match["gen"]] += 1  # counted before it is held
            self.held_peer = self._local.peer
            self.held.set()
            self._release.wait(120)
            with self._id_lock:
                self.submissions[request.match["gen"]] -= 1  # the super() call counts it again
        return super().create(request)

    def release(self) -> None:
        self._release.set()

    def held_by_pid(self) -> int | None:
        """The pid of the process whose socket sent the held request (`ss -p`, loopback)."""
        if self.held_peer is None:
            return None
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", "src", f"127.0.0.1:{self.held_peer[1]}"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        found = re.search(r"pid=(\d+)", out)
        return int(found.group(1)) if found else None
