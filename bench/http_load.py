"""The load tools of bench/run.py's web steps: wrk, or a small Python client when wrk is not
installed (or --python-client). Both return {"rps", "p50", "p99", "errors", "tool"}."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[unit]


def run_wrk(
    url: str, cookie: str, seconds: float, connections: int, lua: Path | None, headers=()
) -> dict:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, int(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Cookie: {cookie}",
    ]
    for header in headers:
        cmd += ["-H", header]
    if lua:
        cmd += ["-s", str(lua)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = int(bad.group(1)) if bad else 0
    if errors:
        n_err += sum(int(g) for g in errors.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": n_err, "tool": "wrk"}


def run_python(
    url: str, cookie: str, seconds: float, connections: int, post: str = "", headers=()
) -> dict:
    """Fallback client: keep-alive connections in threads; fine for smoke mode."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = list(headers)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    end = time.monotonic() + seconds
    counter = [0]

    def worker(n: int):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                headers = {"Cookie": cookie, **dict(h.split(": ", 1) for h in extra)}
                if post:
                    with lock:
                        counter[0] += 1
                        i = counter[0]
                    body = post.replace("KEY", f"py{n}k{i:09d}")
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    conn.request("POST", path, body=body, headers=headers)
                else:
                    conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 400
            except Exception:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            with lock:
                latencies.append((time.perf_counter() - t) * 1000)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "rps": len(latencies) / took,
        "p50": pct(0.5),
        "p99": pct(0.99),
        "errors": errors[0],
        "tool": "python",
    }
