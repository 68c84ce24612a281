"""bench/run.py, Celery: a worker with the product settings on Redis; the baseline task
(bench.tasks.noop), the pipeline of generations through the local provider (with the worker's
RSS) and the async provider jobs."""

from __future__ import annotations

import os
import subprocess
import time

from bench.procs import PY, ROOT, spawn, stop, tree_rss_mib


class CelerySteps:
    """Bench's Celery steps (a mixin of bench.run.Bench: uses its args, smoke, other user, tmp,
    procs, log(), rows and notes)."""

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

    def worker_user(self):
        """The Celery steps' rows belong to a user of their own: the POST step leaves thousands
        of the other user's submissions waiting in the fair queue, and rows published in bulk
        here next to those would make every end take the fair queue's lock for nothing."""
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get_or_create(email="bench-worker@example.com")[0]

    def worker_storage(self) -> dict[str, str]:
        """Workers write images to local disk: the moto server is test equipment whose PUTs
        cost more than S3's, and would measure moto, not Easel."""
        return {"STORAGE_BACKEND": "local", "MEDIA_ROOT": str(self.tmp / "worker-media")}

    def pipeline(self) -> None:
        from django.db.models import Max, Min

        from generator.models import Generation

        n, mark = self.args.pipeline, self.args.memory_mark
        self.purge()
        pks = self._queue("bench-instant", n, self.worker_user())
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
        pks = self._queue("bench-async", n, self.worker_user())
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
