"""The cluster of tests/test_multinode.py — TEST EQUIPMENT: Easel started the way
docs/SCALING.md says, every part a real process on loopback with its own port and var dir.

    haproxy ─┬─ web a (gunicorn, production settings)   worker a ─┐   beat
             └─ web b                                   worker b ─┤
    private PostgreSQL · private redis (cache; broker in the redis run) · private RabbitMQ
    (broker in the rabbitmq run) · moto S3 · the counting simulator (the provider)

The database is the private cluster's, not pytest-django's: the test reads it with psycopg.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from tests import s3server
from tests.conftest import require
from tests.multinode import _group_kill, _spawn, _wait_http
from tests.multinode_services import (
    Postgres,
    Rabbit,
    Redis,
    free_port,
    postgres_available,
    rabbit_available,
)
from tests.multinode_sim import HoldingSimulator
from tests.procs import ROOT, Worker, _wait_group_gone
from tests.simulators.counting import URL_ENV

PASSWORD = "pw-Multinode-123"
SETUP = """
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from generator.models import AIModel
for email in {emails!r}:
    user = get_user_model().objects.create_user(email=email, password={password!r})
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
AIModel.objects.create(
    slug="counting-sim", name="Counting simulator", provider="counting-sim", remote_id="sim",
    timeout_seconds=120,
    options={{"sizes": ["64x64"], "max_images": 2, "defaults": {{"size": "64x64"}}}},
)
"""


class Cluster:
    def __init__(self, broker: str, tmp, s3):
        self.broker, self.tmp, self.s3 = broker, tmp, s3
        self.password = PASSWORD
        self.load_users = [f"load{n}@example.com" for n in range(3)]
        self.hold_user = "hold@example.com"
        self.port = free_port()
        self.web_ports = [free_port(), free_port()]
        self.base = f"http://127.0.0.1:{self.port}"
        self.web_urls = [f"http://127.0.0.1:{p}" for p in self.web_ports]
        self.pg = self.redis = self.rabbit = self.sim = None
        self.webs: list = [None, None]
        self.workers: list = [None, None]
        self.procs: list = []
        # systemd's Restart=always for the worker nodes (docs/DEPLOY.md): a node that exits on
        # its own is started again, and the exit is kept for the report.
        self.exits: list[tuple[float, str, str]] = []  # (time, node, the log's last error)
        self._nodes_lock = threading.Lock()
        self._supervising = threading.Event()

    # --- start -------------------------------------------------------------------------

    def start(self) -> None:
        require(postgres_available(), "PostgreSQL's initdb/pg_ctl are not installed")
        if self.broker == "rabbitmq":
            require(rabbit_available(), "rabbitmq-server is not installed")
        self.sim = HoldingSimulator(job_seconds=0.3).start()
        self.pg = Postgres().init()
        self.redis = Redis(self.tmp).start()
        if self.broker == "rabbitmq":
            (self.tmp / "rabbit").mkdir()
            self.rabbit = Rabbit(self.tmp / "rabbit").start()
        s3 = self.s3
        self.env = dict(
            os.environ,
            DATABASE_URL=self.pg.url(),
            REDIS_URL=self.redis.url,
            CELERY_BROKER_URL=self.rabbit.url if self.rabbit else self.redis.url,
            STORAGE_BACKEND="s3",
            AWS_STORAGE_BUCKET_NAME=s3.bucket,
            AWS_S3_ENDPOINT_URL=s3.endpoint,
            AWS_S3_REGION_NAME=s3server.REGION,
            AWS_ACCESS_KEY_ID=s3server.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=s3server.SECRET_KEY,
            AWS_S3_ADDRESSING_STYLE="path",
            DEBUG="false",
            SECRET_KEY="multinode-test-" + uuid.uuid4().hex,  # one for every node
            ALLOWED_HOSTS="127.0.0.1",
            EASEL_ENV_FILE="",
            EASEL_LEASE_SECONDS="10",
            EASEL_REAPER_INTERVAL="3",
            EASEL_REQUEUE_AFTER_SECONDS="5",
            # The lease of a held submit is this + 60 s: the reaper resolves the killed job then.
            EASEL_PROVIDER_TIMEOUT="5",
            PYTHONUNBUFFERED="1",
            WEB_CONCURRENCY="1",
            GUNICORN_THREADS="16",
            **{URL_ENV: self.sim.url},
        )
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._manage(["migrate", "--noinput"])
        emails = [*self.load_users, self.hold_user]
        self._manage(["shell", "-c", SETUP.format(emails=emails, password=PASSWORD)])
        for i in (0, 1):
            self.start_web(i)
            self.start_worker(i)
        (self.tmp / "beat").mkdir()
        beat = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
                "-s", str(self.tmp / "beat" / "schedule")]  # fmt: skip
        self.procs.append(
            _spawn(
                beat, self.tmp / "beat.log", dict(self.env, EASEL_VAR_DIR=str(self.tmp / "beat"))
            )
        )
        self._haproxy()
        self._supervising.set()
        threading.Thread(target=self._supervise, daemon=True).start()
        for url in self.web_urls:
            assert _wait_http(url + "/readyz", timeout=60), self.logs()
        assert _wait_http(self.base + "/readyz", timeout=30), self.logs()

    def _manage(self, args: list[str]) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    def start_web(self, i: int) -> None:
        name = "ab"[i]
        var = self.tmp / f"web-{name}"
        var.mkdir(exist_ok=True)
        env = dict(self.env, EASEL_VAR_DIR=str(var), GUNICORN_BIND=f"127.0.0.1:{self.web_ports[i]}")
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                   "tests.multinode_wsgi:application"]  # fmt: skip
        self.webs[i] = _spawn(command, self.tmp / f"web-{name}.log", env)

    def start_worker(self, i: int) -> None:
        name = "ab"[i]
        var = self.tmp / f"worker-{name}"
        var.mkdir(exist_ok=True)
        changed = {k: v for k, v in self.env.items() if os.environ.get(k) != v}
        self.workers[i] = Worker(
            self.tmp / f"worker-{name}.log",
            concurrency=2,
            include=("tests.simulators.counting",),
            **changed,
            EASEL_VAR_DIR=str(var),
        ).start()

    def kill_worker(self, i: int) -> None:
        """kill -9 worker node i (main process and pool children), then start it again."""
        with self._nodes_lock:
            self.workers[i].kill()
            self.start_worker(i)

    def _supervise(self) -> None:
        while self._supervising.is_set():
            with self._nodes_lock:
                for i, w in enumerate(self.workers):
                    if self._supervising.is_set() and w.proc.poll() is not None:
                        log = w.log_path.read_text(errors="replace")
                        errors = re.findall(r"CRITICAL/MainProcess\] (.*)", log) or ["?"]
                        self.exits.append((time.time(), f"worker {'ab'[i]}", errors[-1][:160]))
                        self.start_worker(i)
            time.sleep(0.5)

    def _haproxy(self) -> None:
        a, b = self.web_ports
        cfg = self.tmp / "haproxy.cfg"
        cfg.write_text(f"""
global
    maxconn 500
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A check's own limit (inter's 500 ms otherwise): a node busy with a neighbour's restart
    # on a loaded machine answered /readyz in 0.5-1 s and was taken out for it.
    timeout check 3s
    retries 2
    option redispatch
frontend web
    bind 127.0.0.1:{self.port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz?need=database
    http-check send hdr Host 127.0.0.1
    http-response set-header X-Node %s
    server a 127.0.0.1:{a} check inter 500ms fall 2 rise 2
    server b 127.0.0.1:{b} check inter 500ms fall 2 rise 2
""")
        self.procs.append(
            _spawn(["haproxy", "-db", "-f", str(cfg)], self.tmp / "haproxy.log", dict(os.environ))
        )

    # --- use -----------------------------------------------------------------------------

    def query(self, sql: str, *params) -> list[tuple]:
        """A fresh connection each time: the server may have been restarted since."""
        with psycopg.connect(self.pg.url(), connect_timeout=5) as conn:
            return conn.execute(sql, params or None).fetchall()

    def worker_index_of(self, pid: int) -> int:
        group = os.getpgid(pid)
        for i, w in enumerate(self.workers):
            if w and w.proc and w.proc.pid == group:
                return i
        raise AssertionError(f"pid {pid} (group {group}) is no worker node's")

    def logs(self) -> str:
        out = []
        for path in sorted(self.tmp.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(out) + "\n--- postgres\n" + (self.pg.log() if self.pg else "")

    def grep_logs(self, words: list[str]) -> str:
        """Every node's log lines that name one of `words` (a failure's generations)."""
        lines = []
        for path in sorted(self.tmp.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if any(w in line for w in words):
                    lines.append(f"{path.name}: {line[:300]}")
        return "\n".join(lines[-60:])

    # --- stop ----------------------------------------------------------------------------

    def close(self) -> None:
        self._supervising.clear()
        with self._nodes_lock:
            pass  # the supervisor is past its last restart
        if self.sim:
            self.sim.release()
        for w in self.workers:
            if w and w.proc:
                w.kill()
                _wait_group_gone(w.proc.pid)
        for p in [*self.webs, *self.procs]:
            _group_kill(p)
        for service in (self.rabbit, self.redis, self.pg):
            if service:
                service.close()
        if self.sim:
            self.sim.stop()
