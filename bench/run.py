"""`make bench`: every target as a ratio against a baseline measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/easel_bench REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/run.py              # full run, appends to bench/RESULTS.md
    .venv/bin/python bench/run.py --smoke          # tiny data, seconds (tests/test_bench_smoke.py)

Web: gunicorn (2 workers) on loopback, driven by wrk (or a small Python client when wrk is not
installed), each step bounded by --duration. The baseline is /bench/trivial/ (session + user +
one query) on the same server. Images are on S3 (a local moto server) unless --storage local.
Celery: a worker with the product's settings (concurrency 2, prefetch 1, acks late, Redis); the
baseline is bench.tasks.noop on the same broker and worker settings.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
CSRF = "benchcsrfsecret0123456789abcdefg"  # 32 chars: a CSRF secret the bench sets itself


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, cookie: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
            urllib.request.urlopen(req, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def tree_rss_mib(pid: int) -> float:
    """RSS of a process group (a worker's main process and its pool children), MiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


@contextmanager
def empty_cache():
    """The default cache as it is before anything was stored: the same backend under a key
    prefix nobody has used, for counting what a first view costs without flushing anything."""
    from django.core.cache import caches

    backend = caches["default"]
    saved = backend.key_prefix
    backend.key_prefix = f"{saved}-empty{time.time_ns()}"
    try:
        yield
    finally:
        backend.key_prefix = saved


# --- load generation --------------------------------------------------------------------


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


# --- the run ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.tmp = Path(tempfile.mkdtemp(prefix="easel-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.plans: list[str] = []

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # environment shared by this process, gunicorn and the worker
    def prepare_env(self) -> None:
        env = os.environ
        env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/easel_bench")
        env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
        env["EASEL_ALLOW_DEV_SECRET"] = "1"
        env["EASEL_BENCH_VIEWS"] = "1"
        env["DEBUG"] = "false"
        env["LOG_LEVEL"] = "WARNING"
        env["EASEL_LOCAL_PROVIDER_DELAY"] = "0"
        env.setdefault("CACHE_KEY_PREFIX", f"bench{os.getpid()}")
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        if self.args.storage == "s3":
            port = free_port()
            self.procs.append(
                spawn(
                    [str(Path(PY).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                    dict(env),
                    self.tmp / "moto.log",
                )
            )
            wait_http(f"http://127.0.0.1:{port}/moto-api/", 30)
            env.update(
                STORAGE_BACKEND="s3",
                AWS_STORAGE_BUCKET_NAME="easel-bench",
                AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                AWS_S3_REGION_NAME="us-east-1",
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench-secret",
                AWS_S3_ADDRESSING_STYLE="path",
            )
            import boto3

            boto3.client(
                "s3",
                endpoint_url=env["AWS_S3_ENDPOINT_URL"],
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench-secret",
            ).create_bucket(Bucket="easel-bench")
        else:
            env["STORAGE_BACKEND"] = "local"
            env.setdefault("MEDIA_ROOT", str(self.tmp / "media"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()

    def data(self) -> None:
        from bench import datagen
        from generator.models import Generation

        a = self.args
        have = Generation.objects.count()
        if self.smoke or a.regen or have < a.generations:
            self.log(f"generating {a.users} users / {a.generations} generations …")
            summary = datagen.generate(a.users, a.generations, a.heavy, a.seed, log=self.log)
            self.notes.append(f"data: {summary}")
        else:
            self.notes.append(f"data: existing {have} generations (seed {a.seed})")
            datagen.ensure_models()
            # Earlier runs deleted their rows: leave the tables as autovacuum keeps a live
            # database, not full of dead index entries for the next run to step over.
            from django.db import connection

            with connection.cursor() as cur:
                cur.execute("VACUUM (ANALYZE) generator_generation, generator_outputimage")
        datagen.store_objects(a.seed)  # the real image objects, in this run's storage

    def sessions(self) -> None:
        from django.test import Client

        from accounts.models import User
        from bench.datagen import HEAVY_EMAIL
        from gallery.forms import make_cursor
        from generator.models import Generation

        self.heavy = User.objects.get(email=HEAVY_EMAIL)
        self.other = (
            User.objects.filter(email__endswith="@bench.easel")
            .exclude(pk=self.heavy.pk)
            .order_by("pk")
            .first()
        )
        client = Client()
        client.force_login(self.heavy)
        self.cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}"
        # The submission step posts as another user: no worker runs during the web steps, so
        # its thousands of rows stay queued, and as the heavy user's they would turn the page
        # 1 measured next into a page of queued cards that never move (not how a gallery looks).
        client = Client()
        client.force_login(self.other)
        self.post_cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}"
        depth = min(self.args.deep, Generation.objects.filter(user=self.heavy).count() - 60)
        deep = (
            Generation.objects.for_user(self.heavy)
            .newest_first()
            .only("id", "created_at")[depth - 1]
        )
        self.deep_cursor = make_cursor(deep)
        self.depth = depth
        self.start_pk = Generation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    def urls(self) -> dict[str, str]:
        from urllib.parse import quote

        return {
            "trivial view (baseline)": "/bench/trivial/",
            "gallery page 1": "/gallery/",
            f"gallery deep page ({self.depth:,} in)": f"/gallery/?cursor={quote(self.deep_cursor)}",
            "gallery model+status": "/gallery/?model=bench-flux&status=completed",
        }

    def explain(self) -> None:
        """Count the queries of the three gallery pages in each cache state, and EXPLAIN
        ANALYZE every generations query they make when nothing is cached."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from generator import counters

        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(self.heavy)
        # state -> page -> queries: "cold" (an empty cache: the first view ever), "changed"
        # (one of the user's generations changed: the page and its counts are computed
        # again, unchanged cards come from the cache), "seen" (the same page again).
        self.query_counts: dict[str, dict[str, int]] = {"cold": {}, "changed": {}, "seen": {}}
        seq_scans = 0
        for name, url in self.urls().items():
            if url.startswith("/bench/"):
                continue
            captured = {}
            client.get(url)  # seen once in this cache, then:
            for state in ("cold", "seen", "changed"):
                if state == "changed":
                    counters.bump_user(self.heavy.pk)
                with empty_cache() if state == "cold" else nullcontext():
                    with CaptureQueriesContext(connection) as ctx:
                        response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                captured[state] = ctx.captured_queries
                self.query_counts[state][name] = len(ctx.captured_queries)
            cards = response.content.decode().count('class="gen-card')
            self.plans.append(
                f"#### {name}: {cards} cards; {len(captured['cold'])} queries with an empty "
                f"cache, {len(captured['changed'])} after a change, {len(captured['seen'])} "
                "seen before\n"
            )
            for q in captured["cold"]:
                sql = q["sql"]
                if "generator_generation" not in sql or not sql.lstrip().upper().startswith(
                    "SELECT"
                ):
                    continue
                with connection.cursor() as cur:
                    cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql)
                    plan = "\n".join(r[0] for r in cur.fetchall())
                if "Seq Scan on generator_generation" in plan:
                    seq_scans += 1
                short = sql if len(sql) < 400 else sql[:400] + " …"
                self.plans.append(f"```sql\n{short}\n```\n```\n{plan}\n```\n")
        self.seq_scans = seq_scans
        self.log(f"queries per page: {self.query_counts}; seq scans of generations: {seq_scans}")
        # Constant: in each cache state, page 1, the deep page and the filtered page make the
        # same number of queries.
        self.rows.append(
            {
                "measure": "SQL queries per gallery page (p1 / deep / filtered)",
                "value": "; ".join(
                    f"{state} {' / '.join(str(v) for v in counts.values())}"
                    for state, counts in self.query_counts.items()
                ),
                "baseline": "",
                "ratio": "",
                "target": "constant",
                "ok": all(len(set(c.values())) == 1 for c in self.query_counts.values()),
            }
        )
        self.rows.append(
            {
                "measure": "seq scans of generations in gallery plans",
                "value": str(seq_scans),
                "baseline": "",
                "ratio": "",
                "target": "0",
                "ok": seq_scans == 0,
            }
        )

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

    # --- Celery ---------------------------------------------------------------------------
    def purge(self) -> None:
        subprocess.run(
            [PY, "-m", "celery", "-A", "config", "purge", "-f"],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            timeout=60,
        )

    def start_worker(self, name: str, **extra: str) -> subprocess.Popen:
        env = {**os.environ, **extra}
        proc = spawn(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-I",
                "bench.tasks",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
                "-n",
                f"bench-{name}@%h",
            ],
            env,
            self.tmp / f"worker-{name}.log",
        )
        self.procs.append(proc)
        return proc

    def timed(
        self, count_fn, n: int, limit: float, on_tick=None, interval: float = 0.05
    ) -> tuple[float, float, float]:
        """Wait until count_fn() reaches n, asking every `interval` seconds; returns
        (first_done, last_done, started) times as seen by those polls."""
        started = time.monotonic()
        first = None
        deadline = started + limit
        done = 0
        while time.monotonic() < deadline:
            done = count_fn()
            now = time.monotonic()
            if done >= 1 and first is None:
                first = now
            if on_tick:
                on_tick(done)
            if done >= n:
                return first, now, started
            time.sleep(interval)
        raise TimeoutError(f"only {done}/{n} done after {limit:.0f}s")

    def celery_baseline(self) -> None:
        import redis

        from bench.tasks import noop

        n = self.args.tasks
        key = f"bench:noop:{os.getpid()}"
        r = redis.Redis.from_url(os.environ["REDIS_URL"])
        r.delete(key)
        self.purge()
        for _ in range(n):
            noop.apply_async((key,), priority=5)
        worker = self.start_worker("noop")
        first, last, _ = self.timed(lambda: int(r.get(key) or 0), n, 120)
        stop(worker)
        self.noop_rate = (n - 1) / max(last - first, 1e-6)
        self.log(f"noop tasks: {self.noop_rate:.0f}/s")
        self.rows.append(
            {
                "measure": "trivial Celery task (baseline)",
                "value": f"{self.noop_rate:.0f} tasks/s",
                "baseline": "",
                "ratio": "",
                "target": "",
                "ok": True,
            }
        )

    def _queue(self, model_slug: str, n: int, user) -> list[int]:
        from django.utils import timezone

        from generator.models import AIModel, Generation
        from generator.tasks import run_generation

        model = AIModel.objects.get(slug=model_slug)
        gens = Generation.objects.bulk_create(
            Generation(
                user=user,
                model=model,
                provider=model.provider,
                prompt=f"bench pipeline {i}",
                options={"size": "64x64"},
                seed=i,
                num_images=1,
                tag_sent=user.public_id,
            )
            for i in range(n)
        )
        # What tasks.enqueue does, in bulk: publish each task, then one UPDATE.
        for gen in gens:
            run_generation.apply_async((gen.pk,), priority=gen.priority)
        pks = [g.pk for g in gens]
        Generation.objects.filter(pk__in=pks).update(dispatched_at=timezone.now(), dispatches=1)
        return pks

    def worker_storage(self) -> dict[str, str]:
        """Workers write images to local disk: the moto server is test equipment whose PUTs
        cost more than S3's, and would measure moto, not Easel."""
        return {"STORAGE_BACKEND": "local", "MEDIA_ROOT": str(self.tmp / "worker-media")}

    def pipeline(self) -> None:
        from django.db.models import Max, Min

        from generator.models import Generation

        n, mark = self.args.pipeline, self.args.memory_mark
        self.purge()
        pks = self._queue("bench-instant", n, self.other)
        lo, hi = min(pks), max(pks)
        rows = Generation.objects.filter(pk__gte=lo, pk__lte=hi)
        worker = self.start_worker("pipeline", **self.worker_storage())
        mem: dict[str, float] = {}

        def tick(done: int) -> None:
            if done >= mark and "mark" not in mem:
                mem["mark"] = tree_rss_mib(worker.pid)
                mem["mark_done"] = done

        # Polled twice a second only: a COUNT over the batch costs PostgreSQL ~5 ms, and at
        # 20 polls a second the instrument took ~10 % of a core from the machine it measures.
        # The rate comes from the rows' own completion times instead of the polls.
        final = Generation.FINAL
        self.timed(
            lambda: rows.filter(status__in=final).count(),
            n,
            1800 if not self.smoke else 120,
            tick,
            interval=0.05 if self.smoke else 0.5,
        )
        mem["end"] = tree_rss_mib(worker.pid)
        stop(worker)
        failed = rows.exclude(status=Generation.Status.COMPLETED).count()
        span = rows.aggregate(first=Min("finished_at"), last=Max("finished_at"))
        rate = (n - 1) / max((span["last"] - span["first"]).total_seconds(), 1e-6)
        self.log(f"pipeline: {rate:.1f}/s, failed {failed}, memory {mem}")
        self.rows.append(
            {
                "measure": "pipeline: local provider at once, 64×64, concurrency 2",
                "value": f"{rate:.1f} generations/s",
                "baseline": f"{self.noop_rate:.0f} tasks/s",
                "ratio": f"{rate / self.noop_rate:.2f}×",
                "target": "≥ 0.2×",
                "ok": rate / self.noop_rate >= 0.2 and failed == 0,
            }
        )
        growth = mem["end"] / mem["mark"] - 1
        self.rows.append(
            {
                "measure": f"worker RSS after {n:,} vs after {mem['mark_done']:,} generations",
                "value": f"{mem['end']:.0f} MiB",
                "baseline": f"{mem['mark']:.0f} MiB",
                "ratio": f"{growth * 100:+.1f}%",
                "target": "within 10%",
                "ok": abs(growth) <= 0.10,
            }
        )

    def async_jobs(self) -> None:
        from django.db.models import Max, Min

        from generator.models import AIModel, Generation

        n = self.args.async_jobs
        AIModel.objects.filter(slug="bench-async").update(params={"delay": self.args.async_delay})
        self.purge()
        worker = self.start_worker("async", **self.worker_storage())
        time.sleep(3 if not self.smoke else 2)  # the worker is up before the clock starts
        t0 = time.monotonic()
        pks = self._queue("bench-async", n, self.other)
        rows = Generation.objects.filter(pk__gte=min(pks), pk__lte=max(pks))
        try:
            _, last, _ = self.timed(
                lambda: rows.filter(status__in=Generation.FINAL).count(), n, 120
            )
            wall = last - t0
        except TimeoutError as exc:
            self.notes.append(f"async jobs: {exc}")
            wall = float("inf")
        stop(worker)
        done = rows.filter(status=Generation.Status.COMPLETED).count()
        span = rows.aggregate(a=Min("created_at"), b=Max("finished_at"))
        self.log(f"async: {done}/{n} completed, wall {wall:.1f}s ({span})")
        self.rows.append(
            {
                "measure": f"{n:,} async {self.args.async_delay:g}-s provider jobs, concurrency 2",
                "value": f"all done in {wall:.1f} s wall" if done == n else f"{done}/{n} done",
                "baseline": f"provider time {self.args.async_delay:g} s",
                "ratio": f"{wall / self.args.async_delay:.2f}×",
                "target": f"≤ {self.args.async_delay * 2:g} s",
                "ok": done == n and wall <= self.args.async_delay * 2,
            }
        )

    def cleanup_rows(self) -> None:
        """Delete the rows this run created, in SQL: the image files are in this run's
        temporary folder, so the per-object storage receivers have nothing to do."""
        from django.db import router

        from generator import counters
        from generator.models import Generation

        rows = Generation.objects.filter(pk__gt=self.start_pk)
        db = router.db_for_write(Generation)
        for rel in Generation._meta.related_objects:
            if rel.related_model is Generation:  # re-runs: keep the link out of the way
                rel.related_model.objects.filter(**{f"{rel.field.name}__in": rows}).update(
                    **{rel.field.name: None}
                )
            elif rel.one_to_many or rel.one_to_one:
                rel.related_model.objects.filter(**{f"{rel.field.name}__in": rows})._raw_delete(db)
        rows._raw_delete(db)
        counters.bump_user(self.heavy.pk)
        counters.bump_user(self.other.pk)

    # --- report ---------------------------------------------------------------------------
    def machine(self) -> str:
        import django

        mem = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1024 / 1024
        cpu = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
        import redis

        rv = redis.Redis.from_url(os.environ["REDIS_URL"]).info().get("redis_version")
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        wrk = (
            subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[
                0
            ]
            if shutil.which("wrk")
            else "not installed"
        )
        return (
            f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB RAM, {platform.platform()}; "
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"PostgreSQL {pg}, Redis {rv}, {wrk.strip()}; commit {commit}"
        )

    def report(self) -> str:
        a = self.args
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"### Run {when}{' (smoke)' if self.smoke else ''}",
            "",
            f"- machine: {self.machine()}",
            f"- storage: web {a.storage}{' (moto server on loopback, presigned URLs)' if a.storage == 's3' else ''}, "
            "Celery workers local disk; "
            f"load: {a.connections} connections × {a.duration:g} s × {a.rounds} rounds "
            "(median of rounds)",
            *[f"- {n}" for n in self.notes],
            "",
            "| measure | value | same-run baseline | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row['measure']} | {row['value']} | {row['baseline']} | "
                f"{row['ratio']} | {row['target']} | {'yes' if row['ok'] else '**NO**'} |"
            )
        lines.append("")
        if self.plans:
            lines += [
                "<details><summary>EXPLAIN ANALYZE of the gallery queries</summary>",
                "",
                *self.plans,
                "</details>",
                "",
            ]
        return "\n".join(lines)

    def run(self) -> int:
        try:
            self.prepare_env()
            self.data()
            self.sessions()
            if "web" in self.args.only:
                self.explain()
                self.web()
            if "celery" in self.args.only:
                self.celery_baseline()
                self.pipeline()
            if "async" in self.args.only:
                self.async_jobs()
            self.cleanup_rows()
        finally:
            for proc in reversed(self.procs):
                stop(proc)
        text = self.report()
        print(text)
        if self.args.results:
            with open(self.args.results, "a") as fh:
                fh.write("\n" + text)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.rows, indent=1))
        return 0 if all(r["ok"] for r in self.rows) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Easel benchmark: targets as same-run ratios.")
    p.add_argument("--smoke", action="store_true", help="tiny data, seconds; for the test suite")
    p.add_argument("--storage", choices=["s3", "local"], default="s3")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1_000_000)
    p.add_argument("--heavy", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--regen", action="store_true", help="rewrite the data set even if present")
    p.add_argument("--deep", type=int, default=90_000, help="items in for the deep page")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per load step")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tasks", type=int, default=5000, help="baseline Celery tasks")
    p.add_argument("--pipeline", type=int, default=10_000, help="generations through the pipeline")
    p.add_argument("--memory-mark", type=int, default=1000)
    p.add_argument("--async-jobs", type=int, default=1000)
    p.add_argument("--async-delay", type=float, default=10.0, help="provider seconds per job")
    p.add_argument("--python-client", action="store_true", help="use the Python client, not wrk")
    p.add_argument(
        "--results",
        default=str(ROOT / "bench" / "RESULTS.md"),
        help="append the table here ('' = do not)",
    )
    p.add_argument("--json", default="", help="also write the rows as JSON here")
    p.add_argument(
        "--only",
        default="web,celery,async",
        type=lambda v: set(v.split(",")),
        help="comma-separated steps to run: web, celery (baseline + pipeline), async",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.users, args.generations, args.heavy, args.deep = 4, 300, 200, 100
        args.duration, args.rounds, args.connections = 1.0, 1, 2
        args.tasks, args.pipeline, args.memory_mark, args.async_jobs = 40, 20, 5, 5
        args.async_delay = 1.0
        if args.results == str(ROOT / "bench" / "RESULTS.md"):
            args.results = ""
    return Bench(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
