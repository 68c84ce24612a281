"""A bounded load run: N simulated users sign in, submit and browse for a fixed time.

Starts its own gunicorn (web) and Celery worker (with the reaper's beat) on loopback against
the PostgreSQL and Redis named by DATABASE_URL / REDIS_URL, uses the offline local provider
(with a delay, so generations go through the queued → running → checks → completed path),
and stops by itself. Nothing leaves 127.0.0.1.

    .venv/bin/python bench/load.py                 # 50 users, 300 s
    .venv/bin/python bench/load.py --smoke         # 3 users, 8 s (run by tests/test_faults.py)

Prints one JSON object at the end: requests, errors, latency percentiles, generations by
status, and the RSS (MiB, process tree) of web and worker at start and end. Exit code 1 when
there was any error or a generation was left non-terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load_users import PASSWORD, Stats, percentile, user_session  # noqa: E402
from bench.procs import PY, ROOT, free_port  # noqa: E402


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def prefill(users, per_user: int) -> None:
    """Give every user `per_user` completed generations at once, so gallery pages are full from
    the first request and memory can be watched with page sizes that no longer grow. The rows
    share one real stored image (rendered by the local provider) to keep this fast."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from generator.imaging import make_thumbnail
    from generator.models import AIModel, Generation, OutputImage
    from generator.providers.local import render

    model = AIModel.objects.get(slug="local-sketch")
    png = render("prefilled", 1, (256, 256))
    original = default_storage.save("prefill/original.png", ContentFile(png))
    thumbnail = default_storage.save("prefill/thumb.webp", ContentFile(make_thumbnail(png)))
    now = timezone.now()
    for user in users:
        gens = Generation.objects.bulk_create(
            Generation(
                user=user,
                model=model,
                provider="local",
                prompt=f"prefilled {i}",
                options={"size": "256x256"},
                seed=i,
                status=Generation.Status.COMPLETED,
                tag_sent=user.public_id,
                created_at=now,
                started_at=now,
                finished_at=now,
            )
            for i in range(per_user)
        )
        OutputImage.objects.bulk_create(
            OutputImage(
                generation=g,
                index=0,
                file=original,
                thumbnail=thumbnail,
                width=256,
                height=256,
                bytes=len(png),
                content_type="image/png",
            )
            for g in gens
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--ramp", type=float, default=120.0, help="seconds over which users arrive")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--provider-delay", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=180.0, help="max wait for terminal rows")
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="completed generations per user before the run (full gallery pages from the start)",
    )
    parser.add_argument("--smoke", action="store_true", help="3 users for 8 s (for the test suite)")
    args = parser.parse_args(argv)
    if args.smoke:
        # Logins 1.5 s apart: allauth gives up on its per-IP cache lock after 1 s, so logins
        # from one IP at the same instant on a starved CPU can be refused with a 429.
        args.users, args.duration, args.ramp, args.settle = 3, 8.0, 4.5, 60.0
        args.web_workers, args.worker_concurrency = 2, 2
    think = (0.2, 0.5) if args.smoke else (1.0, 3.0)

    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must point at PostgreSQL / Redis on loopback")
    media = tempfile.mkdtemp(prefix="easel-load-media-")
    env = dict(
        os.environ,
        EASEL_ALLOW_DEV_SECRET="1",
        DEBUG="false",
        MEDIA_ROOT=media,
        EASEL_LOCAL_PROVIDER_DELAY=str(args.provider_delay),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        CACHE_KEY_PREFIX=f"easel-load-{os.getpid()}",
    )
    os.environ.update(
        {
            k: env[k]
            for k in (
                "EASEL_ALLOW_DEV_SECRET",
                "MEDIA_ROOT",
                "DJANGO_SETTINGS_MODULE",
                "CACHE_KEY_PREFIX",
            )
        }
    )

    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from generator.models import Generation

    User = get_user_model()
    run_tag = f"{int(time.time())}-{os.getpid()}"
    emails = [f"load{i}-{run_tag}@example.com" for i in range(args.users)]
    users = [User.objects.create_user(email=email, password=PASSWORD) for email in emails]
    # Signed-up people who confirmed their address: with mandatory verification (the production
    # default, issue #14) an unconfirmed one cannot sign in.
    EmailAddress.objects.bulk_create(
        EmailAddress(user=u, email=u.email, verified=True, primary=True) for u in users
    )
    if args.prefill:
        prefill(users, args.prefill)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix="easel-load-logs-"))
    web = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.web_workers),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            # Longer than a user's think time, as behind a proxy: otherwise gunicorn closes an idle
            # keep-alive connection just as the client reuses it (a client-side reset, not an error).
            "--keep-alive",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(logs / "web.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--beat",
            "--loglevel=WARNING",
            f"--concurrency={args.worker_concurrency}",
            "--without-gossip",
            "--without-mingle",
            f"--schedule={logs / 'beat-schedule'}",
            "-n",
            f"load-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(logs / "worker.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result: dict = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/accounts/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"gunicorn did not start; see {logs / 'web.log'}")
        time.sleep(1.0)  # let the worker connect
        rss_start = {"web": tree_rss_mib(web.pid), "worker": tree_rss_mib(worker.pid)}

        stats = Stats()
        started = time.monotonic()
        stop_at = started + args.duration
        threads = [
            threading.Thread(
                target=user_session,
                args=(base, email, stop_at, args.ramp * i / max(1, args.users), stats, think),
                daemon=True,
            )
            for i, email in enumerate(emails)
        ]
        for t in threads:
            t.start()
        rss_series = []
        while any(t.is_alive() for t in threads):
            rss_series.append(
                {
                    "t": round(time.monotonic() - started),
                    "web": tree_rss_mib(web.pid),
                    "worker": tree_rss_mib(worker.pid),
                }
            )
            for t in threads:
                t.join(timeout=max(0.0, 30.0 / len(threads)))
        elapsed = time.monotonic() - started
        rss_load_end = {"web": tree_rss_mib(web.pid), "worker": tree_rss_mib(worker.pid)}

        ids = list(stats.submitted)
        settle_end = time.monotonic() + args.settle
        while time.monotonic() < settle_end:
            active = Generation.objects.filter(public_id__in=ids, status__in=Generation.ACTIVE)
            if not active.exists():
                break
            time.sleep(0.5)
        counts = Generation.objects.filter(public_id__in=ids).status_counts()
        durations = [
            (g.finished_at - g.created_at).total_seconds()
            for g in Generation.objects.filter(public_id__in=ids, finished_at__isnull=False)
        ]
        all_lat = [x for v in stats.latencies.values() for x in v]
        result = {
            "users": args.users,
            "prefill_per_user": args.prefill,
            "duration_s": round(elapsed, 1),
            "requests": len(all_lat),
            "requests_per_s": round(len(all_lat) / elapsed, 1) if elapsed else 0,
            "errors": len(stats.errors),
            "error_samples": stats.errors[:10],
            "latency_ms": {
                name: {
                    "n": len(v),
                    "p50": percentile(v, 50),
                    "p95": percentile(v, 95),
                    "max": percentile(v, 100),
                }
                for name, v in sorted(stats.latencies.items())
            },
            "generations": {"submitted": len(ids), **counts},
            "generation_seconds": {
                "p50": round(statistics.median(durations), 2) if durations else None,
                "max": round(max(durations), 2) if durations else None,
            },
            "rss_mib": {
                "start": rss_start,
                "end_of_load": rss_load_end,
                "end": {"web": tree_rss_mib(web.pid), "worker": tree_rss_mib(worker.pid)},
                "every_30s": rss_series,
            },
            "logs": str(logs),
        }
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (web, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    print(json.dumps(result, indent=2))
    gens = result.get("generations", {})
    left = gens.get("queued", 0) + gens.get("running", 0)
    ok = result and result["errors"] == 0 and left == 0 and gens.get("submitted", 0) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
