"""bench/run.py, web: gunicorn (2 workers) on loopback driven by wrk or the Python client,
step by step, round after round, and the table rows for the web targets."""

from __future__ import annotations

import os
import shutil
import statistics
import urllib.request
from pathlib import Path

from bench.http_load import run_python, run_wrk
from bench.procs import PY, free_port, spawn, stop, wait_http

CSRF = "benchcsrfsecret0123456789abcdefg"  # 32 chars: a CSRF secret the bench sets itself


class WebSteps:
    """Bench's web step (a mixin of bench.run.Bench: uses its args, cookies, users, urls(),
    tmp, procs, log(), rows and notes)."""

    def web(self) -> None:
        a = self.args
        port = free_port()
        env = dict(os.environ)
        self.gunicorn = spawn(
            [
                str(Path(PY).parent / "gunicorn"),
                "config.wsgi",
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "/dev/null",
                "--error-logfile",
                "-",
                "--log-level",
                "warning",
            ],
            env,
            self.tmp / "gunicorn.log",
        )
        self.procs.append(self.gunicorn)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/bench/trivial/", 30, self.cookie)
        use_wrk = shutil.which("wrk") is not None and not a.python_client
        if not use_wrk:
            self.notes.append("load tool: Python client (wrk not installed)")
        urls = self.urls()
        post_body = (
            "model=bench-instant&prompt=a+red+fox+in+the+snow&num_images=1&size=64x64"
            f"&idempotency_key=KEY&csrfmiddlewaretoken={CSRF}"
        )
        lua = self.tmp / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            "local n = 0\n"
            "local tag = tostring(math.random(100000000, 999999999))\n"
            "request = function()\n  n = n + 1\n"
            f'  local body = string.gsub("{post_body}", "KEY", "w" .. tag .. "n" .. n)\n'
            "  return wrk.format(nil, nil, nil, body)\nend\n"
        )
        card_url = self.running_card()
        card_etag = ""
        steps = {
            **urls,
            "gallery page 1 after a change": "/bench/gallery-after-change/",
            "card poll": card_url,
            "card poll, unchanged": card_url,
            "submission (POST /)": "/",
        }
        # The submissions and the running card are the other user's (see sessions()).
        own = {"submission (POST /)", "card poll", "card poll, unchanged"}
        for name, url in steps.items():  # warm both workers, and check every page answers
            cookie = self.post_cookie if name in own else self.cookie
            for _ in range(4):
                req = urllib.request.Request(base + url, headers={"Cookie": cookie})
                if url == "/":
                    break
                with urllib.request.urlopen(req, timeout=30) as resp:
                    assert resp.status == 200
                    card_etag = resp.headers.get("ETag") or card_etag
        results: dict[str, list[dict]] = {name: [] for name in steps}
        for r in range(a.rounds):
            for name, url in steps.items():
                post = name.startswith("submission")
                cookie = self.post_cookie if name in own else self.cookie
                # What the browser sends when it asks again for a card it holds.
                headers = [f"If-None-Match: {card_etag}"] if name.endswith("unchanged") else []
                if use_wrk:
                    res = run_wrk(
                        base + url,
                        cookie,
                        a.duration,
                        a.connections,
                        lua if post else None,
                        headers,
                    )
                else:
                    res = run_python(
                        base + url,
                        cookie,
                        a.duration,
                        a.connections,
                        post_body if post else "",
                        headers,
                    )
                self.log(
                    f"round {r + 1} {name}: {res['rps']:.1f} req/s p50 {res['p50']:.1f} ms "
                    f"p99 {res['p99']:.1f} ms errors {res['errors']}"
                )
                results[name].append(res)
        self.web_results = results
        med = {
            n: {k: statistics.median(x[k] for x in v) for k in ("rps", "p50", "p99", "errors")}
            for n, v in results.items()
        }
        names = list(steps)
        triv, p1 = med[names[0]], med[names[1]]
        self.table_web = med
        self.rows.append(
            {
                "measure": "trivial view (baseline)",
                "value": f"{triv['rps']:.0f} req/s, p99 {triv['p99']:.1f} ms",
                "baseline": "",
                "ratio": "",
                "target": "",
                "ok": triv["errors"] == 0,
            }
        )
        self.rows.append(
            {
                "measure": "gallery page 1, heavy user, 48 cards: throughput",
                "value": f"{p1['rps']:.0f} req/s",
                "baseline": f"{triv['rps']:.0f} req/s",
                "ratio": f"{p1['rps'] / triv['rps']:.2f}×",
                "target": "≥ 0.5×",
                "ok": p1["rps"] / triv["rps"] >= 0.5 and p1["errors"] == 0,
            }
        )
        self.rows.append(
            {
                "measure": "gallery page 1: p99 latency",
                "value": f"{p1['p99']:.1f} ms",
                "baseline": f"{triv['p99']:.1f} ms",
                "ratio": f"{p1['p99'] / triv['p99']:.2f}×",
                "target": "≤ 3×",
                "ok": p1["p99"] / triv["p99"] <= 3,
            }
        )
        for name in names[2:4]:
            m = med[name]
            ratio = m["rps"] / p1["rps"]
            self.rows.append(
                {
                    "measure": f"{name}: throughput",
                    "value": f"{m['rps']:.0f} req/s",
                    "baseline": f"page 1 {p1['rps']:.0f} req/s",
                    "ratio": f"{ratio:.2f}×",
                    "target": "within 10% (≥ 0.9×)",
                    "ok": ratio >= 0.9 and m["errors"] == 0,
                }
            )
        fresh = med["gallery page 1 after a change"]
        self.rows.append(
            {
                "measure": "gallery page 1 made anew each time (a change before every request)",
                "value": f"{fresh['rps']:.0f} req/s, p99 {fresh['p99']:.1f} ms",
                "baseline": f"{triv['rps']:.0f} req/s",
                "ratio": f"{fresh['rps'] / triv['rps']:.2f}×",
                "target": "none (what a user generating all the time gets)",
                "ok": fresh["errors"] == 0,
            }
        )
        for name, what in (
            ("card poll", "card poll, one running card (200, rendered)"),
            ("card poll, unchanged", "card poll, nothing changed since the last (304)"),
        ):
            m = med[name]
            self.rows.append(
                {
                    "measure": what,
                    "value": f"{m['rps']:.0f} req/s, p99 {m['p99']:.1f} ms",
                    "baseline": f"{triv['rps']:.0f} req/s",
                    "ratio": f"{m['rps'] / triv['rps']:.2f}×",
                    "target": "none (the capacity model's poll cost)",
                    "ok": m["errors"] == 0,
                }
            )
        sub = med["submission (POST /)"]
        self.rows.append(
            {
                "measure": "submission (POST, validate, save, enqueue)",
                "value": f"{sub['rps']:.0f} req/s",
                "baseline": f"{triv['rps']:.0f} req/s",
                "ratio": f"{sub['rps'] / triv['rps']:.2f}×",
                "target": "≥ 0.3×",
                "ok": sub["rps"] / triv["rps"] >= 0.3 and sub["errors"] == 0,
            }
        )
        from generator.models import Generation

        made = Generation.objects.filter(pk__gt=self.start_pk, user=self.other).count()
        self.notes.append(f"submissions saved during the POST step: {made}")
        if made == 0:
            self.rows[-1]["ok"] = False
        stop(self.gunicorn)

    def running_card(self) -> str:
        """The card URL of a generation of the other user's that stays running (no worker
        runs during the web steps): what a page polls every second while it works."""
        from django.urls import reverse
        from django.utils import timezone

        from generator.models import AIModel, Generation

        model = AIModel.objects.get(slug="bench-instant")
        gen = Generation.objects.create(
            user=self.other,
            model=model,
            provider=model.provider,
            prompt="bench: a card polled while it runs",
            options={"size": "64x64"},
            status=Generation.Status.RUNNING,
            started_at=timezone.now(),
            progress=0.5,
            tag_sent=self.other.public_id,
        )
        return reverse("generator:card", args=[gen.public_id])
