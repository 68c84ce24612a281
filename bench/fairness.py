"""The fair queue (issue 14): with one user holding 100 queued generations, another user's
single generation finishes within 2× its time on an idle system.

Real parts: PostgreSQL (a dedicated database, migrated here), Redis as the broker, one real
`celery worker` process at concurrency 2, and the OpenAI simulator (test equipment) over
loopback HTTP answering each generation after `--seconds` (a synchronous provider: the worker
slot is held for the call, the case where FIFO hurts most).

Three measurements of the light user's generation (created → finished), each the median of
`--rounds`: idle; behind the heavy user's 100 with the fair queue (EASEL_USER_CONCURRENCY, the
product default 4); and behind them with the fair queue off (0: plain FIFO), for contrast.

    .venv/bin/python bench/fairness.py [--seconds 1.0] [--backlog 100] [--rounds 3]

Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/easel_bench_fair),
REDIS_URL (default redis://127.0.0.1:6379/1). Prints the figures and appends them with the
date and machine to bench/RESULTS.md (--no-record to skip). Exit 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.async_jobs import machine, setup_django  # noqa: E402
from bench.results import append_row  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/easel_bench_fair"
HEADER = "## Fair queue (bench/fairness.py, issue #14)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="provider reply time")
    parser.add_argument("--backlog", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cap", type=int, default=4, help="EASEL_USER_CONCURRENCY")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    media = Path(tempfile.mkdtemp(prefix="easel-bench-fair-"))
    if not setup_django(DEFAULT_DB, media):
        return 2
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from generator.models import AIModel, Generation
    from tests.procs import Worker
    from tests.simulators.openai import OpenAISimulator

    users = get_user_model().objects
    heavy, _ = users.get_or_create(email="bench-fair-heavy@example.com")
    light, _ = users.get_or_create(email="bench-fair-light@example.com")
    model, _ = AIModel.objects.update_or_create(
        slug="bench-openai",
        defaults={
            "name": "Bench (OpenAI simulator)",
            "provider": "openai",
            "remote_id": "gpt-image-1",
            "options": {"sizes": ["1024x1024"], "max_images": 1},
        },
    )
    Generation.objects.filter(model=model).delete()  # each run starts from nothing

    figures: dict[str, float] = {}
    with OpenAISimulator() as sim:
        sim.faults.set(latency=args.seconds, only=r"^/v1/images/generations$")
        settings.EASEL_PROVIDERS["openai"].update(api_key=sim.api_key, base_url=sim.url)
        for label, cap in (("fair", args.cap), ("fifo", 0)):
            settings.EASEL_USER_CONCURRENCY = cap  # submissions here, in this process
            worker = Worker(
                media / f"worker-{label}.log",
                concurrency=2,
                OPENAI_API_KEY=sim.api_key,
                OPENAI_BASE_URL=sim.url,
                EASEL_USER_CONCURRENCY=str(cap),
                LOG_LEVEL="WARNING",
            )
            worker.purge()
            worker.start()
            try:
                if label == "fair":
                    figures["idle"] = statistics.median(
                        one(light, model, Generation) for _ in range(args.rounds + 1)
                    )  # the first also warms the worker up
                rounds = args.rounds if label == "fair" else 1
                figures[label] = statistics.median(
                    behind_backlog(heavy, light, model, Generation, args.backlog)
                    for _ in range(rounds)
                )
            finally:
                worker.stop()

    ratio = figures["fair"] / figures["idle"]
    ok = ratio <= 2.0
    print(
        f"provider reply {args.seconds:g} s, worker concurrency 2, backlog {args.backlog}, "
        f"cap {args.cap}"
    )
    print(f"light user's generation: idle {figures['idle']:.2f} s")
    print(
        f"  behind the backlog, fair queue: {figures['fair']:.2f} s = {ratio:.2f}x idle "
        f"(target <= 2x) {'MET' if ok else 'MISSED'}"
    )
    print(
        f"  behind the backlog, plain FIFO: {figures['fifo']:.2f} s = "
        f"{figures['fifo'] / figures['idle']:.2f}x idle"
    )
    print(f"machine: {machine()}")
    if not args.no_record:
        record(args, figures, ratio)
    return 0 if ok else 1


def one(user, model, Generation) -> float:
    from generator import actions

    gen, _ = actions.submit(
        user, {"model": model, "prompt": "a lighthouse", "options": {"size": "1024x1024"}}
    )
    return seconds_to_finish(gen, Generation)


def behind_backlog(heavy, light, model, Generation, backlog: int) -> float:
    """The heavy user queues `backlog`; once the worker is busy with them, the light user
    submits one. Returns its created → finished seconds; the rest of the backlog is canceled."""
    from generator import actions

    data = {"model": model, "options": {"size": "1024x1024"}}
    queued = [actions.submit(heavy, {**data, "prompt": f"crowd {i}"})[0] for i in range(backlog)]
    end = time.monotonic() + 60
    while (
        time.monotonic() < end
        and not Generation.objects.filter(user=heavy, status="running").exists()
    ):
        time.sleep(0.02)
    seconds = one(light, model, Generation)
    for gen in Generation.objects.filter(pk__in=[g.pk for g in queued], status="queued"):
        actions.cancel(gen, "Bench: backlog cleared.")
    end = time.monotonic() + 120
    while time.monotonic() < end and Generation.objects.filter(status="running").exists():
        time.sleep(0.1)
    return seconds


def seconds_to_finish(gen, Generation, timeout: float = 600.0) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        gen.refresh_from_db()
        if gen.is_final:
            if gen.status != "completed":
                raise SystemExit(f"{gen.public_id} ended {gen.status}: {gen.error}")
            return (gen.finished_at - gen.created_at).total_seconds()
        time.sleep(0.02)
    raise SystemExit(f"{gen.public_id} did not finish in {timeout:g} s")


def record(args, figures: dict[str, float], ratio: float) -> None:
    append_row(
        HEADER,
        "One user holds a backlog of queued generations on a synchronous provider (the OpenAI\n"
        "simulator answering after a fixed time); another user submits one. Its created →\n"
        "finished time against the same on an idle system. Target: ≤ 2×. One worker at\n"
        "concurrency 2, Redis, PostgreSQL; median of rounds.",
        ["date (UTC)", "reply s", "backlog", "cap", "idle", "fair queue", "plain FIFO", "machine"],
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.seconds:g} | {args.backlog} | {args.cap} "
        f"| {figures['idle']:.2f} s | **{figures['fair']:.2f} s ({ratio:.2f}×)** | "
        f"{figures['fifo']:.2f} s ({figures['fifo'] / figures['idle']:.1f}×) | {machine()} |",
    )


if __name__ == "__main__":
    sys.exit(main())
