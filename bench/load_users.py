"""bench/load.py, the simulated users: one signs in, then submits, browses the gallery, polls
cards and opens details at random until the end of the run; Stats records every request's
latency and every error."""

from __future__ import annotations

import random
import re
import threading
import time

import httpx

PASSWORD = "load-Test-pw-4821"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.submitted: list[str] = []

    def record(self, name: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(name, []).append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def csrf(client: httpx.Client) -> str:
    return client.cookies.get("csrftoken") or ""


def call(stats: Stats, client: httpx.Client, name: str, method: str, url: str, ok=(200,), **kw):
    start = time.perf_counter()
    try:
        response = client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        stats.error(f"{name}: {type(exc).__name__}: {exc}")
        return None
    stats.record(name, time.perf_counter() - start)
    if response.status_code not in ok:
        stats.error(f"{name}: {method} {url} -> {response.status_code}")
        return None
    return response


def user_session(
    base: str,
    email: str,
    stop_at: float,
    start_delay: float,
    stats: Stats,
    think: tuple[float, float],
) -> None:
    time.sleep(start_delay)  # a ramp, as people arrive (and under allauth's login rate limit)
    rng = random.Random(email)
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        if not call(stats, client, "login_page", "GET", "/accounts/login/"):
            return
        r = call(
            stats,
            client,
            "login",
            "POST",
            "/accounts/login/",
            ok=(302,),
            data={"login": email, "password": PASSWORD, "csrfmiddlewaretoken": csrf(client)},
            headers={"Referer": f"{base}/accounts/login/"},
        )
        if r is None:
            return
        mine: list[str] = []
        n = 0
        while time.monotonic() < stop_at:
            action = rng.random()
            if action < 0.35 or not mine:
                n += 1
                r = call(
                    stats,
                    client,
                    "submit",
                    "POST",
                    "/",
                    ok=(302,),
                    data={
                        "model": "local-sketch",
                        "prompt": f"load test {email} #{n}",
                        "size": "256x256",
                        "num_images": "1",
                        "seed": "",
                        "negative_prompt": "",
                        "idempotency_key": f"load-{abs(hash(email)) % 10**8}-{n}",
                        "csrfmiddlewaretoken": csrf(client),
                    },
                    headers={"Referer": f"{base}/"},
                )
                if r is not None:
                    m = re.search(r"new=([A-Za-z0-9_-]+)", r.headers.get("Location", ""))
                    if m:
                        mine.append(m.group(1))
                        with stats.lock:
                            stats.submitted.append(m.group(1))
            elif action < 0.55:
                call(stats, client, "home", "GET", "/")
            elif action < 0.75:
                r = call(stats, client, "gallery", "GET", "/gallery/")
            elif action < 0.9:
                call(stats, client, "card", "GET", f"/g/{rng.choice(mine)}/card/")
            else:
                call(stats, client, "detail", "GET", f"/gallery/{rng.choice(mine)}/")
            time.sleep(rng.uniform(*think))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    k = min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))
    return round(values[k] * 1000, 1)
