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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.celery_steps import CelerySteps
from bench.procs import PY, ROOT, free_port, spawn, stop, wait_http
from bench.queries import QuerySteps
from bench.report import ReportSteps
from bench.web_steps import CSRF, WebSteps


class Bench(QuerySteps, WebSteps, CelerySteps, ReportSteps):
    """One run: environment, data set and sessions here; the steps in bench/queries.py,
    bench/web_steps.py and bench/celery_steps.py; the report in bench/report.py."""

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
        self.publish()
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
