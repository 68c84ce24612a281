"""bench/run.py, report: the machine line, the table (printed, appended to RESULTS.md) and
the --json rows."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import ROOT


class ReportSteps:
    """Bench's report (a mixin of bench.run.Bench: uses its args, smoke, notes, rows and
    plans)."""

    def machine(self) -> str:
        import django

        mem = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1024 / 1024
        cpu = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
        import redis

        rv = redis.Redis.from_url(os.environ["REDIS_URL"]).info().get("redis_version")
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        wrk = (
            subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[
                0
            ]
            if shutil.which("wrk")
            else "not installed"
        )
        return (
            f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB RAM, {platform.platform()}; "
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"PostgreSQL {pg}, Redis {rv}, {wrk.strip()}; commit {commit}"
        )

    def report(self) -> str:
        a = self.args
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"### Run {when}{' (smoke)' if self.smoke else ''}",
            "",
            f"- machine: {self.machine()}",
            f"- storage: web {a.storage}{' (moto server on loopback, presigned URLs)' if a.storage == 's3' else ''}, "
            "Celery workers local disk; "
            f"load: {a.connections} connections × {a.duration:g} s × {a.rounds} rounds "
            "(median of rounds)",
            *[f"- {n}" for n in self.notes],
            "",
            "| measure | value | same-run baseline | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row['measure']} | {row['value']} | {row['baseline']} | "
                f"{row['ratio']} | {row['target']} | {'yes' if row['ok'] else '**NO**'} |"
            )
        lines.append("")
        if self.plans:
            lines += [
                "<details><summary>EXPLAIN ANALYZE of the gallery queries</summary>",
                "",
                *self.plans,
                "</details>",
                "",
            ]
        return "\n".join(lines)

    def publish(self) -> None:
        """Print the report, append it to --results and write the rows to --json."""
        text = self.report()
        print(text)
        if self.args.results:
            with open(self.args.results, "a") as fh:
                fh.write("\n" + text)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.rows, indent=1))
