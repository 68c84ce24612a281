"""`make test` keeps the benchmark working: bench/run.py --smoke on tiny data, in seconds.

It runs the same code as `make bench` (COPY data generator, gunicorn with two workers, the load
tool, a real Celery worker on Redis, EXPLAIN of the gallery queries) and checks that every step
produced a figure. Targets are judged by the full run only (bench/RESULTS.md): tiny data on a
shared machine says nothing about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import procs
from tests.conftest import require, uses_postgres


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_the_benchmark_runs_end_to_end_in_smoke_mode(tmp_path):
    require(uses_postgres(), "the benchmark needs PostgreSQL (DATABASE_URL=postgres://…)")
    require(procs.redis_available(), "the benchmark needs Redis (REDIS_URL)")
    out = tmp_path / "rows.json"
    env = {
        **os.environ,
        "DATABASE_URL": procs.test_database_url(),
        "MEDIA_ROOT": str(tmp_path / "m"),
        "CACHE_KEY_PREFIX": f"smoke{os.getpid()}",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--smoke",
            "--storage",
            "local",
            "--results",
            "",
            "--json",
            str(out),
        ],
        cwd=procs.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {row["measure"]: row for row in json.loads(out.read_text())}
    text = proc.stdout
    assert "| measure | value |" in text
    for prefix in (
        "trivial view",
        "gallery page 1",
        "gallery deep page",
        "gallery model+status",
        "submission",
        "trivial Celery task",
        "pipeline",
        "worker RSS",
        "5 async",
    ):
        assert any(m.startswith(prefix) for m in rows), (prefix, list(rows))
    throughput = rows["gallery page 1, heavy user, 48 cards: throughput"]["value"]
    assert float(throughput.split()[0]) > 0, throughput
    assert rows["SQL queries per gallery page (p1 / deep / filtered)"]["ok"]
    assert "EXPLAIN ANALYZE" in text
    assert "submissions saved during the POST step: 0" not in text
