"""Private services for tests/test_multinode.py — TEST EQUIPMENT: a PostgreSQL cluster, a
RabbitMQ node and a redis-server of the test's own, each on a free loopback port and in a folder
of its own, so the test can stop and restart them under load without touching the shared
PostgreSQL (5432), RabbitMQ (5672) or Redis (6379) that other people use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.multinode import _group_kill, _spawn

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(probe, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if probe():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:g} s")


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def rabbit_available() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists() and (RABBIT_BIN / "rabbitmqctl").exists()


class Postgres:
    """`initdb` into a temporary folder, trust auth, its own port. initdb refuses root, so as
    root it runs as the `postgres` user (`runuser`), in a folder that user owns (pytest's
    tmp_path is root-only)."""

    def __init__(self):
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="easel-multinode-pg-"))
        self.data = self.folder / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")

    def url(self, db: str = "easel") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        subprocess.run(
            [*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
             "-l", str(self.folder / "postgres.log"), "-o", options, *args],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def init(self) -> Postgres:
        subprocess.run(
            [*self.as_user, str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
             "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.start()
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE easel")
        return self

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def close(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class Rabbit:
    """A RabbitMQ node of the test's own: node name easel-test-<port>@localhost, its own
    AMQP and distribution ports, mnesia, logs, config and Erlang cookie (HOME) in `folder`."""

    def __init__(self, folder: Path):
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"easel-test-{self.port}@localhost"
        self.folder = folder
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (folder / "rabbitmq-env.conf").write_text("")  # not Debian's (NODENAME=rabbit@localhost)
        (folder / "enabled_plugins").write_text("[].\n")
        self.env = dict(
            os.environ,
            HOME=str(folder),
            RABBITMQ_CONF_ENV_FILE=str(folder / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(folder / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(folder / "enabled_plugins"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(folder / "log"),
            RABBITMQ_PID_FILE=str(folder / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self.proc = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _amqp_up(self) -> bool:
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def start(self) -> Rabbit:
        self.proc = _spawn(
            [str(RABBIT_BIN / "rabbitmq-server")], self.folder / "rabbit-out.log", self.env
        )
        _wait(self._amqp_up, 90, "the private RabbitMQ node")  # the listener opens last
        return self

    def stop(self) -> None:
        """`rabbitmqctl stop`: the node stops and halts (durable queues stay in mnesia)."""
        subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "stop"],
            env=self.env, capture_output=True, timeout=60,
        )  # fmt: skip
        if self.proc:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _group_kill(self.proc)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop()
        _group_kill(self.proc)


class Redis:
    def __init__(self, folder: Path):
        self.port, self.folder, self.proc = free_port(), folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> Redis:
        # appendonly: the queue survives the restart, as a broker with persistence does.
        self.proc = _spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            self.folder / "redis.log", dict(os.environ),
        )  # fmt: skip
        _wait(self._up, 10, "the private redis-server")
        return self

    def stop(self) -> None:
        _group_kill(self.proc, signal.SIGTERM)

    close = stop
