"""Async provider jobs do not hold workers: 50 simultaneous generations whose (simulated)
Scenario jobs take 5 s each, on ONE Celery worker process at concurrency 2.

If a worker slot waited for a job, 50 jobs x 5 s / 2 slots would take ≥ 125 s. Because a task
submits once and schedules its own next check, the target is < 15 s for all 50.

Real parts: PostgreSQL (a dedicated database, migrated here), Redis as the broker, a real
`celery worker` child process, and the Scenario simulator (test equipment) over loopback HTTP.

    .venv/bin/python bench/async_jobs.py [--jobs 50] [--duration 5] [--concurrency 2]

Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/easel_bench_h1),
REDIS_URL (default redis://127.0.0.1:6379/1). Prints the figures and appends them with the
date and machine to bench/RESULTS.md (--no-record to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import append_row  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/easel_bench_h1"


def setup_django(default_db: str, media: Path) -> bool:
    """The standalone benches' set-up: settings for BENCH_DATABASE_URL (created and migrated
    here) and REDIS_URL, media in `media`, Django ready. False (said why) without Redis."""
    db_url = os.environ.get("BENCH_DATABASE_URL", default_db)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        EASEL_ALLOW_DEV_SECRET="1",
        EASEL_ENV_FILE="",
        DATABASE_URL=db_url,
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"),
        MEDIA_ROOT=str(media),
        LOG_LEVEL="WARNING",
    )
    ensure_database(db_url)
    import django

    django.setup()
    from django.core.management import call_command

    from tests.procs import redis_available

    if not redis_available():
        print("Redis is not reachable at REDIS_URL; this benchmark needs a real broker.")
        return False
    call_command("migrate", verbosity=0)
    return True


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def machine() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    load = f"load avg {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{os.cpu_count()} CPUs (nproc), {mem}, {load}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0, help="simulated job seconds")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    media = Path(tempfile.mkdtemp(prefix="easel-bench-media-"))
    if not setup_django(DEFAULT_DB, media):
        return 2
    from django.contrib.auth import get_user_model

    from generator import actions
    from generator.models import AIModel, Generation
    from tests.procs import Worker
    from tests.simulators.scenario import API_KEY, API_SECRET, ScenarioSimulator

    user, _ = get_user_model().objects.get_or_create(email="bench-async@example.com")
    model, _ = AIModel.objects.update_or_create(
        slug="bench-scenario",
        defaults={
            "name": "Bench (Scenario simulator)",
            "provider": "scenario",
            "remote_id": "model_sim-flux",
            "options": {"aspect_ratios": ["1:1"]},
        },
    )
    Generation.objects.filter(model=model).delete()  # each run starts from nothing

    from django.conf import settings

    with ScenarioSimulator() as sim:
        settings.EASEL_PROVIDERS["scenario"].update(
            api_key=API_KEY, api_secret=API_SECRET, base_url=sim.url
        )
        log = media / "worker.log"
        worker = Worker(
            log,
            concurrency=args.concurrency,
            SCENARIO_BASE_URL=sim.url,
            SCENARIO_API_KEY=API_KEY,
            SCENARIO_API_SECRET=API_SECRET,
            LOG_LEVEL="WARNING",
        )
        worker.purge()
        worker.start()
        try:
            # Warm-up: one instant job, so worker start-up is not part of the figure.
            sim.job_duration = 0.0
            warm, _ = actions.submit(user, {"model": model, "prompt": "warm-up"})
            if not wait([warm.pk], 60, Generation):
                print("The worker did not start:\n" + worker.log())
                return 1
            Generation.objects.filter(pk=warm.pk).delete()
            sim.requests.clear()

            sim.job_duration = args.duration
            start = time.monotonic()
            pks = [
                actions.submit(
                    user,
                    {"model": model, "prompt": f"bench {i}", "options": {"aspect_ratio": "1:1"}},
                )[0].pk
                for i in range(args.jobs)
            ]
            submitted = time.monotonic() - start
            rows = wait(pks, args.timeout, Generation)
            wall = time.monotonic() - start
        finally:
            worker.stop()
        rows = rows or list(Generation.objects.filter(pk__in=pks))
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row.status] = statuses.get(row.status, 0) + 1
        durations = sorted(
            (r.finished_at - r.created_at).total_seconds() for r in rows if r.finished_at
        )
        task_times = parse_task_times(log)
        posts = len(sim.submissions())
        polls = len(sim.received("GET", r"^/jobs/"))

    serial = args.jobs * args.duration / args.concurrency
    ok = statuses.get("completed", 0) == args.jobs
    print(f"jobs={args.jobs} job_duration={args.duration:g}s worker_concurrency={args.concurrency}")
    print(
        f"submitted all in {submitted:.2f}s; all final after {wall:.2f}s (target < 15 s; "
        f"a worker-blocking design needs >= {serial:.0f} s)"
    )
    print(
        f"statuses={statuses} submits={posts} polls={polls} "
        f"per-generation p50={pct(durations, 50):.2f}s max={durations[-1] if durations else 0:.2f}s"
    )
    for name, times in sorted(task_times.items()):
        print(
            f"worker task {name}: n={len(times)} total={sum(times):.2f}s "
            f"mean={sum(times) / len(times):.3f}s max={max(times):.3f}s"
        )
    print(f"machine: {machine()}")
    if not args.no_record:
        record(args, wall, submitted, statuses, posts, polls, durations)
    if ok:
        shutil.rmtree(media, ignore_errors=True)
    else:
        print(f"worker log kept in {media}")
    return 0 if ok else 1


def parse_task_times(log: Path) -> dict[str, list[float]]:
    """Per task name, the run times the worker logged ("Task x[id] succeeded in 0.12s")."""
    import re

    times: dict[str, list[float]] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for name, seconds in re.findall(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s", text):
        times.setdefault(name.rsplit(".", 1)[-1], []).append(float(seconds))
    return times


def pct(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def wait(pks, timeout, Generation) -> list | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = list(Generation.objects.filter(pk__in=pks))
        if len(rows) == len(pks) and all(r.is_final for r in rows):
            return rows
        time.sleep(0.1)
    return None


def record(args, wall, submitted, statuses, posts, polls, durations) -> None:
    append_row(
        "## Async provider jobs (bench/async_jobs.py, issue #3)",
        "50 simultaneous generations on the Scenario simulator, each job 5 s, one real Celery\n"
        "worker process at concurrency 2, Redis broker, PostgreSQL. Target: all done < 15 s.",
        ["date (UTC)", "jobs × job s", "concurrency", "wall time, all final", "statuses",
         "submits", "polls", "p50 / max per generation", "machine"],
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.jobs} × {args.duration:g} | "
        f"{args.concurrency} | **{wall:.2f} s** (submits took {submitted:.2f} s) | {statuses} | "
        f"{posts} | {polls} | {pct(durations, 50):.2f} / {(durations[-1] if durations else 0):.2f} s | "
        f"{machine()} |",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
