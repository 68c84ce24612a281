"""The embedded default under load (issue 14): 2,000 submissions on SQLite, local disk and the
filesystem broker (config/kombu_fs.py), one `celery worker --beat` at concurrency 2 as
`make run` starts it. The worker died once in ~600 submissions on kombu's own transport.

Prints the wall time, the statuses, whether the worker process is the one started (no death,
no restart) and any traceback in its log; appends a row to bench/RESULTS.md (--no-record to
skip). Exit 1 if a generation did not complete or the worker died.

    .venv/bin/python bench/embedded.py [--submissions 2000] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.async_jobs import machine  # noqa: E402
from bench.results import append_row  # noqa: E402

HEADER = "## Embedded default under load (bench/embedded.py, issue #14)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="easel-bench-embedded-"))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "STORAGE_BACKEND"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        EASEL_ALLOW_DEV_SECRET="1",
        EASEL_ENV_FILE="",
        DEBUG="true",
        EASEL_VAR_DIR=str(var),
        EASEL_LOCAL_PROVIDER_DELAY="0",
        EASEL_USER_CONCURRENCY="0",  # all 2,000 in the broker at once: the broker's own load
        LOG_LEVEL="WARNING",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from generator import actions
    from generator.models import AIModel, Generation

    log = var / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--concurrency=2",
         f"--schedule={var / 'beat'}", "--loglevel=INFO"],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    user, _ = get_user_model().objects.get_or_create(email="bench-embedded@example.com")
    model = AIModel.objects.get(slug="local-sketch")
    start = time.monotonic()
    try:
        pks = [
            actions.submit(
                user, {"model": model, "prompt": f"load {i}", "options": {"size": "256x256"}}
            )[0].pk
            for i in range(args.submissions)
        ]
        submitted = time.monotonic() - start
        end = start + args.timeout
        while time.monotonic() < end:
            left = Generation.objects.filter(pk__in=pks).exclude(status__in=Generation.FINAL)
            if not left.exists() or worker.poll() is not None:
                break
            time.sleep(1.0)
        wall = time.monotonic() - start
        alive = worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
    statuses = Generation.objects.filter(pk__in=pks).status_counts()
    text = log.read_text(errors="replace")
    tracebacks = text.count("Traceback")
    decode_errors = text.count("JSONDecodeError")
    ok = alive and statuses.get("completed", 0) == args.submissions
    print(f"{args.submissions} submissions on the embedded default (SQLite, filesystem broker)")
    print(f"submitted in {submitted:.1f} s; all final after {wall:.1f} s; statuses {statuses}")
    print(
        f"worker alive throughout: {alive}; tracebacks in its log: {tracebacks} "
        f"(JSONDecodeError: {decode_errors})"
    )
    print(f"machine: {machine()}")
    if not args.no_record:
        record(args, wall, statuses, alive, tracebacks)
    return 0 if ok else 1


def record(args, wall, statuses, alive, tracebacks) -> None:
    append_row(
        HEADER,
        "Submissions through `generator.actions.submit` on SQLite, local disk and the\n"
        "filesystem broker, one `celery worker --beat` at concurrency 2. Target: every\n"
        "generation completed, no worker death.",
        ["date (UTC)", "submissions", "all final after", "statuses", "worker alive",
         "tracebacks", "machine"],
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.submissions} | {wall:.1f} s | "
        f"{ {k: v for k, v in statuses.items() if v} } | {alive} | {tracebacks} | {machine()} |",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
