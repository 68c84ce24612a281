"""Waiting holds no web worker (issue #17), two figures on the ASGI server of README "Serving":

1. `waits`: 200 simultaneous synchronous API requests (Meteron `X-Async: false`, a service key,
   200 end users) for 10-second jobs (the built-in renderer with a 10-s delay, 256x256 images:
   the figure is about waiting, not drawing), served by uvicorn with 2 worker processes. Target: every request answered, completed, within 12 s. A design
   that held a worker per waiting request would need 200 / 2 x 10 s = 1,000 s.
2. `cards`: a signed-in Chromium page of the gallery with live updates (server-sent events);
   generations are completed one at a time by this process (as a worker does: image stored,
   row completed); each figure runs from the row's `finished_at` to the moment the card's new
   image has loaded in the page. Target: p50 <= 0.3 s, on Redis.

Real parts: PostgreSQL (a database of its own, migrated here), Redis (broker, cache and the
notifications), a real `celery worker`, uvicorn, Debian's Chromium.

    .venv/bin/python bench/live_wait.py [--only waits|cards] [--requests 200] [--duration 10]

Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/easel_bench_live),
REDIS_URL (default redis://127.0.0.1:6379/1). Appends to bench/RESULTS.md (--no-record to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.async_jobs import machine, pct, setup_django  # noqa: E402
from bench.procs import cpu_by_group, machine_cpu  # noqa: E402
from bench.results import append_row  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/easel_bench_live"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waits(args, media: Path) -> tuple[bool, str]:
    import httpx
    from django.conf import settings

    from accounts.models import ApiKey, User
    from generator.models import AIModel, Generation
    from tests.procs import Worker, uvicorn

    owner, _ = User.objects.get_or_create(email="bench-live-service@example.com")
    model = AIModel.objects.get(slug="local-sketch")
    Generation.objects.filter(user__service_owner=owner).delete()
    key = ApiKey.issue(owner, "bench", kind=ApiKey.Kind.SERVICE)[1]
    env = {
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "EASEL_API_RATE_LIMIT": "0",
        "EASEL_API_SYNC_TIMEOUT": "60",
        "LOG_LEVEL": "WARNING",
    }
    # The built-in renderer's job is asynchronous with a known end: the worker submits it and
    # checks once when it is due (generator/providers/local.py), holding no slot meanwhile.
    worker = Worker(
        media / "worker.log",
        concurrency=args.concurrency,
        EASEL_LOCAL_PROVIDER_DELAY=str(args.duration),
        **env,
    )
    worker.purge()
    worker.start()
    try:
        with uvicorn(media, free_port(), workers=2, **env) as (base, _):
            warm = httpx.post(
                f"{base}/api/images/generations",
                headers={"Authorization": f"Bearer {key}", "X-Model": model.slug, "X-User": "w"},
                json={"prompt": "warm-up"},
                timeout=120,
            )
            if warm.status_code != 200:
                return False, f"warm-up failed: {warm.status_code} {warm.text[:300]}"
            group = grouper(worker.proc.pid)
            cpu_before, machine_before = cpu_by_group(group), machine_cpu()
            answers, wall, health = asyncio.run(burst(base, key, model.slug, args.requests))
            cpu = spent(cpu_before, cpu_by_group(group), machine_before, machine_cpu())
    finally:
        worker.stop()
    started = Generation.objects.filter(user__service_owner=owner, submitted_at__isnull=False)
    submits = started.exclude(prompt="warm-up").count()
    codes: dict[int, int] = {}
    for code, _, _ in answers:
        codes[code] = codes.get(code, 0) + 1
    completed = sum(1 for code, status, _ in answers if code == 200 and status == "completed")
    times = sorted(t for _, _, t in answers)
    ok = completed == args.requests and wall <= 12.0
    line = (
        f"{args.requests} sync requests x {args.duration:g}-s jobs, uvicorn 2 workers: all answered "
        f"in {wall:.2f} s (target <= 12 s), completed={completed}, codes={codes}, "
        f"p50={pct(times, 50):.2f} s max={times[-1]:.2f} s, generations sent={submits}, "
        f"/healthz during the wait p50={pct(health, 50) * 1000:.0f} ms max={max(health) * 1000:.0f} ms"
    )
    where = where_it_went(owner, cpu, args.requests, wall)
    line += f"\n  {where['line']}"
    if not args.no_record:
        append_row(
            "## Sync API waits hold no worker (bench/live_wait.py waits, issue #17)",
            "200 simultaneous `X-Async: false` requests (service key, 200 end users) for 10-s\n"
            "jobs of the built-in renderer, uvicorn with 2 worker processes, one Celery worker,\n"
            "PostgreSQL, Redis. Target: all answered within 12 s.",
            ["date (UTC)", "requests × job s", "all answered", "completed", "p50 / max",
             "/healthz meanwhile p50 / max", "machine"],
            f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.requests} × {args.duration:g} | "
            f"**{wall:.2f} s** | {completed} | {pct(times, 50):.2f} / {times[-1]:.2f} s | "
            f"{pct(health, 50) * 1000:.0f} / {max(health) * 1000:.0f} ms | {machine()} |",
        )  # fmt: skip
        append_row(
            "## Where the burst's time goes (bench/live_wait.py waits, issue #17)",
            "The same runs: CPU seconds each part used from the first request to the last\n"
            "answer (from /proc), per generation, and the machine's busy and stolen share of\n"
            "its cores meanwhile (/proc/stat); then when, from the first request, the rows were\n"
            "created, sent to the provider and finished (PostgreSQL's timestamps, last one).\n"
            "Every request waits its job's 10 s after the last of the generations before it was\n"
            "sent: the answer comes at about (last sent) + 10 s + (last finished's lag).",
            ["date (UTC)", "requests", "all answered", "uvicorn / celery / postgresql / redis / "
             "client CPU s", "CPU per generation", "machine busy / stolen", "last created / "
             "sent / finished"],
            f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.requests} | {wall:.2f} s | "
            f"{where['groups']} | {where['per_gen']:.1f} ms | {where['machine']} | "
            f"{where['timeline']} |",
        )  # fmt: skip
    return ok, line


def grouper(worker_pgid: int):
    """Names the processes of the run for bench.procs.cpu_by_group: uvicorn (its supervisor
    and its spawned workers: the run starts no other), the Celery group (main process and
    pool), PostgreSQL (every backend: nothing else uses the cluster meanwhile), Redis and this
    client."""

    def group(pid: int, pgid: int, cmdline: str) -> str | None:
        if pid == os.getpid():
            return "client"
        if pgid == worker_pgid:
            return "celery"
        if "config.asgi:application" in cmdline or "spawn_main" in cmdline:
            return "uvicorn"
        if cmdline.startswith("postgres"):
            return "postgresql"
        if "redis-server" in cmdline:
            return "redis"
        return None

    return group


def spent(before: dict, after: dict, machine_before: dict, machine_after: dict) -> dict:
    used = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    used.update({f"machine_{k}": machine_after[k] - machine_before[k] for k in machine_after})
    return used


def where_it_went(owner, cpu: dict, requests: int, wall: float) -> dict:
    """The CPU by part, per generation, the machine's share, and the rows' timeline."""
    from django.db.models import Max, Min

    from generator.models import Generation

    names = ("uvicorn", "celery", "postgresql", "redis", "client")
    total = sum(cpu.get(n, 0.0) for n in names)
    cores = cpu["machine_busy"] + cpu["machine_idle"] + cpu["machine_steal"]
    busy, steal = cpu["machine_busy"] / cores, cpu["machine_steal"] / cores
    rows = Generation.objects.filter(user__service_owner=owner).exclude(prompt="warm-up")
    t = rows.aggregate(
        t0=Min("created_at"), c=Max("created_at"), s=Max("submitted_at"), f=Max("finished_at")
    )
    timeline = " / ".join(
        f"{(t[k] - t['t0']).total_seconds():.2f}" if t[k] else "-" for k in ("c", "s", "f")
    )
    groups = " / ".join(f"{cpu.get(n, 0.0):.1f}" for n in names)
    return {
        "groups": groups,
        "per_gen": total / requests * 1000,
        "machine": f"{busy:.0%} / {steal:.0%}",
        "timeline": f"{timeline} s",
        "line": (
            f"CPU s during the burst (uvicorn / celery / postgresql / redis / client): {groups} "
            f"= {total:.1f} s, {total / requests * 1000:.1f} ms per generation; machine busy "
            f"{busy:.0%}, stolen {steal:.0%} of {cores / wall:.1f} cores x {wall:.1f} s; last "
            f"created / sent / finished at {timeline} s"
        ),
    }


async def burst(base: str, key: str, slug: str, n: int):
    """All `n` requests at once, and /healthz every 0.5 s meanwhile; the client is
    bench/lean_http.py (httpx's own CPU took a fifth of this machine, see there)."""
    from bench.lean_http import request

    async def one(i: int):
        started = time.monotonic()
        r = await request(
            base, "POST", "/api/images/generations",
            headers={"Authorization": f"Bearer {key}", "X-Model": slug, "X-User": f"u{i}"},
            json={"prompt": f"bench {i}", "size": "256x256"},
        )  # fmt: skip
        status = r.json().get("status") if r.status == 200 else r.text[:120]
        return r.status, status, time.monotonic() - started

    async def probe(stop: asyncio.Event, out: list[float]):
        await asyncio.sleep(2)  # while every request is waiting for its job
        while not stop.is_set():
            started = time.monotonic()
            await request(base, "GET", "/healthz")
            out.append(time.monotonic() - started)
            await asyncio.sleep(0.5)

    stop, health = asyncio.Event(), []
    prober = asyncio.create_task(probe(stop, health))
    started = time.monotonic()
    answers = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.monotonic() - started
    stop.set()
    await prober
    return answers, wall, health or [0.0]


def cards(args, media: Path) -> tuple[bool, str]:
    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.test import Client
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from accounts.models import User
    from generator.models import AIModel, Generation, OutputImage
    from tests.conftest import CHROMIUM_ARGS
    from tests.procs import uvicorn

    user, _ = User.objects.get_or_create(email="bench-live-cards@example.com")
    Generation.objects.filter(user=user).delete()
    model = AIModel.objects.get(slug="local-sketch")
    gens = [
        Generation.objects.create(
            user=user, model=model, provider="local", prompt=f"card {i}", status="running"
        )
        for i in range(args.cards)
    ]
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 200)).save(out, "PNG")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    env = {"MEDIA_ROOT": str(settings.MEDIA_ROOT), "EASEL_LIVE_UPDATES": "sse"}
    latencies: list[float] = []
    with uvicorn(media, free_port(), workers=2, **env) as (base, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            page.context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
            # Records, per card, when its first image has loaded (epoch ms, this machine's clock).
            page.add_init_script(
                "window.__shown = {};"
                "new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach(n => {"
                " if (!n.id || !n.id.startsWith('gen-')) return;"
                " const img = n.querySelector('img'); if (!img) return;"
                " const done = () => { window.__shown[n.id] = Date.now(); };"
                " if (img.complete && img.naturalWidth) done(); else img.addEventListener('load', done);"
                "}))).observe(document, {childList: true, subtree: true});"
            )
            page.goto(f"{base}/gallery/")
            page.wait_for_timeout(1500)  # the stream is open and has sent the cards once
            for gen in gens:
                name = f"generations/{user.public_id}/{gen.public_id}/0.png"
                default_storage.save(name, ContentFile(out.getvalue()))
                image = OutputImage(
                    generation=gen, index=0, file=name, width=64, height=64,
                    bytes=len(out.getvalue()), content_type="image/png",
                )  # fmt: skip
                gen.complete_with_images([image])
                stored = Generation.objects.get(pk=gen.pk).finished_at.timestamp()
                page.wait_for_function(
                    f"() => window.__shown['gen-{gen.public_id}']", timeout=15_000
                )
                shown = page.evaluate(f"() => window.__shown['gen-{gen.public_id}']") / 1000
                latencies.append(shown - stored)
                page.wait_for_timeout(200)
            polls = page.evaluate(
                "() => performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/card/')).length"
            )
            browser.close()
    latencies.sort()
    p50 = pct(latencies, 50)
    ok = p50 <= 0.3 and polls == 0
    line = (
        f"{len(latencies)} cards: stored -> image on screen p50={p50 * 1000:.0f} ms "
        f"p90={pct(latencies, 90) * 1000:.0f} ms max={latencies[-1] * 1000:.0f} ms "
        f"(target p50 <= 300 ms), card polls={polls}"
    )
    if not args.no_record:
        append_row(
            "## Live cards by server-sent events (bench/live_wait.py cards, issue #17)",
            "A signed-in Chromium gallery page on uvicorn (2 workers) with EASEL_LIVE_UPDATES=sse,\n"
            "Redis notifications; each figure from the generation's finished_at to its card's\n"
            "image loaded in the page. Target: p50 <= 0.3 s.",
            ["date (UTC)", "cards", "p50", "p90", "max", "card polls", "machine"],
            f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {len(latencies)} | **{p50 * 1000:.0f} ms** | "
            f"{pct(latencies, 90) * 1000:.0f} ms | {latencies[-1] * 1000:.0f} ms | {polls} | "
            f"{machine()} |",
        )  # fmt: skip
    return ok, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["waits", "cards"])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="simulated job seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker slots")
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API
    media = Path(tempfile.mkdtemp(prefix="easel-bench-live-"))
    if not setup_django(DEFAULT_DB, media):
        return 2
    ok = True
    for name, run in (("waits", waits), ("cards", cards)):
        if args.only and args.only != name:
            continue
        passed, line = run(args, media)
        ok &= passed
        print(f"{name}: {line} -> {'met' if passed else 'NOT MET'}")
    print(f"machine: {machine()}")
    if ok:
        shutil.rmtree(media, ignore_errors=True)
    else:
        print(f"logs kept in {media}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
