"""Structured logs (issue 16): with LOG_FORMAT=json every log line is one JSON object (time,
level, logger, message, generation, provider), pipeline lines name their generation and
provider, and no secret or prompt text is written at INFO. The default stays plain text.

Real parts: PostgreSQL, Redis, a `celery worker` process and the OpenAI simulator over loopback
HTTP (test equipment).
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from config.celery import app as celery_app
from generator import actions, logs
from generator.models import AIModel, Generation
from tests.conftest import require, uses_postgres
from tests.procs import ROOT, _wait_group_gone, redis_available, worker_env
from tests.simulators.openai import OpenAISimulator

PIPELINE = ("generator.tasks", "generator.outputs", "generator.providers")
FIELDS = {"time", "level", "logger", "message", "generation", "provider"}


def parse(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # any line that is not JSON fails here
    for record in records:
        assert FIELDS <= set(record), record
    return records


def test_json_formatter_names_the_generation_from_context_or_extra():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("generator.tasks.test_ops")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logs.bind("g-123", "openai")
        logger.warning("line one\nwith a newline")
        logs.bind(None, None)
        logger.info("line two", extra={"generation": "g-456", "provider": "replicate"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("line three")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logs.bind(None, None)
    one, two, three = parse(stream.getvalue())
    assert (one["generation"], one["provider"], one["level"]) == ("g-123", "openai", "WARNING")
    assert (
        one["message"] == "line one\nwith a newline" and one["logger"] == "generator.tasks.test_ops"
    )
    assert (two["generation"], two["provider"]) == ("g-456", "replicate")
    assert (three["generation"], three["provider"]) == (None, None)
    assert "ValueError: boom" in three["exc"]


def test_log_format_selects_the_formatter_of_djangos_logging():
    text = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; import django; "
            "django.setup(); print(s.LOGGING['handlers']['console']['formatter']); "
            "import logging; logging.getLogger('generator.tasks').warning('hello')",
        ],
        cwd=ROOT,
        env={**worker_env(), "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.stdout.strip() == "json", text.stderr
    (record,) = parse(text.stderr)
    assert record["message"] == "hello" and record["logger"] == "generator.tasks"
    assert django_settings.LOGGING["handlers"]["console"]["formatter"] == "plain"  # the default


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_a_worker_with_log_format_json_writes_only_json_lines(tmp_path, settings, owner):
    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    celery_app.conf.task_always_eager = False
    secret_prompt = "a-very-private-prompt-7f3a"
    with OpenAISimulator(api_key="sk-sim-secret-key-9b2c") as sim:
        model = AIModel.objects.create(
            slug="dalle-logs",
            name="Dalle",
            provider="openai",
            remote_id="dall-e-2",
            timeout_seconds=2,  # the submit's read timeout: the held reply below outlasts it
            options={"sizes": ["256x256"], "max_images": 1, "seed": False},
        )
        env = worker_env(LOG_FORMAT="json", OPENAI_API_KEY=sim.api_key, OPENAI_BASE_URL=sim.url)
        out, err = open(tmp_path / "out.log", "wb"), open(tmp_path / "err.log", "wb")
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "config", "purge", "-f"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "--quiet",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"logs-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            data = {"model": model, "num_images": 1, "options": {"size": "256x256"}}
            done = actions.submit(owner, {**data, "prompt": secret_prompt})[0]
            end = time.monotonic() + 60
            while time.monotonic() < end and not done.is_final:
                time.sleep(0.1)
                done.refresh_from_db()
            # The next reply is held past the read timeout: an unknown outcome, logged.
            sim.faults.set(hang=4.0, only=r"^/v1/images/generations$", times=1)
            unknown = actions.submit(owner, {**data, "prompt": "second"})[0]
            end = time.monotonic() + 60
            while time.monotonic() < end and not unknown.is_final:
                time.sleep(0.1)
                unknown.refresh_from_db()
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            _wait_group_gone(proc.pid)
        text = (tmp_path / "err.log").read_text()
    assert done.status == Generation.Status.COMPLETED, (done.error, text[-3000:])
    assert unknown.status == Generation.Status.FAILED, (unknown.error, text[-3000:])
    records = parse(text)
    pipeline = [r for r in records if r["logger"].startswith(PIPELINE)]
    assert pipeline, text[-3000:]
    for record in pipeline:
        assert record["provider"] == "openai", record
        assert record["generation"] in {str(done.public_id), str(unknown.public_id)}, record
    assert any(r["generation"] == str(unknown.public_id) for r in pipeline)
    # Celery's own lines from the task's process carry it too.
    assert any(
        r["logger"].startswith("celery") and r["generation"] == str(done.public_id) for r in records
    ), text[-3000:]
    assert secret_prompt not in text and sim.api_key not in text
