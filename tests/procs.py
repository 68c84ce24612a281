"""Real processes for tests: a Celery worker on the test database and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test_* database)."""
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def redis_available() -> bool:
    url = os.environ.get("REDIS_URL")
    if not url:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        REDIS_URL=os.environ["REDIS_URL"],
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EASEL_ALLOW_DEV_SECRET="1",
        EASEL_LOCAL_PROVIDER_DELAY=str(settings.EASEL_LOCAL_PROVIDER_DELAY),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until every process of the group (pool children too) has exited, so none holds a
    connection to the test database when pytest-django drops it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Worker:
    """`celery worker` as a child process; stopped (or killed) by the test."""

    def __init__(
        self, log_path: Path, concurrency: int = 2, include: tuple[str, ...] = (), **env: str
    ):
        self.log_path = log_path
        self.concurrency = concurrency
        self.include = include  # extra task modules (test-only providers) the worker imports
        self.env = worker_env(**env)
        self.proc: subprocess.Popen | None = None

    def purge(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "config", "purge", "-f"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> Worker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={self.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *(arg for module in self.include for arg in ("--include", module)),
                "-n",
                f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """kill -9 the whole worker (main process and pool children)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            _wait_group_gone(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextmanager
def gunicorn(tmp_path: Path, port: int, **extra: str) -> Iterator[tuple[str, int]]:
    """A real gunicorn (`-c gunicorn.conf.py config.wsgi`, 2 workers) on the test database, its
    own var dir; yields (base URL, how many /healthz tries it took to answer: a try that timed
    out may still have been served). Stopped with SIGTERM after."""
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "config.wsgi"]
    env = {"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", **extra}
    with _server(tmp_path, "gunicorn", command, port, env) as served:
        yield served


@contextmanager
def uvicorn(tmp_path: Path, port: int, workers: int = 1, **extra: str) -> Iterator[tuple[str, int]]:
    """The ASGI server of README "Serving" (`uvicorn config.asgi:application`), as `gunicorn`."""
    command = [
        sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip
    with _server(tmp_path, "uvicorn", command, port, extra) as served:
        yield served


@contextmanager
def _server(
    tmp_path: Path, name: str, command: list[str], port: int, extra: dict[str, str]
) -> Iterator[tuple[str, int]]:
    env = {
        **os.environ,
        "EASEL_VAR_DIR": str(tmp_path / "var"),
        "EASEL_ENV_FILE": "",
        "DATABASE_URL": test_database_url(),
        **extra,  # may name another DATABASE_URL (an unreachable one, tests/test_db_unavailable.py)
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(tmp_path / f"{name}.log", "wb")
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        tries = 0
        for _ in range(100):
            tries += 1
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, tries
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
