"""Test helper: run one call from many threads at once (each on its own DB connection)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def run_at_once(n: int, call: Callable[[int], str], timeout: float = 60) -> list[str]:
    """Start `call(i)` for i in range(n) in n threads released together by a barrier; return
    what each call returned (e.g. "created" / "refused"), in finishing order."""
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(i):
        try:
            barrier.wait(timeout=30)
            result = call(i)
            with lock:
                outcomes.append(result)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return outcomes
