"""Issue 16: a newcomer's first run. `make run` writes a dev .env that every command reads."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from config import envfile
from tests.procs import ROOT

DROPPED = (
    "DEBUG",
    "SECRET_KEY",
    "EASEL_ALLOW_DEV_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "STORAGE_BACKEND",
    "MEDIA_ROOT",
    "EASEL_ENV_FILE",
)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(EASEL_ENV_FILE=str(tmp_path / ".env"), EASEL_VAR_DIR=str(tmp_path / "var"), **extra)
    return env


def _run(args, env):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_parse_reads_names_quotes_and_comments():
    text = "# c\nDEBUG=true\nexport A='x y'\nB=\"q\"\nC=1 # note\nnot a line\n"
    assert envfile.parse(text) == {"DEBUG": "true", "A": "x y", "B": "q", "C": "1"}


def test_write_dev_env_is_private_and_real_variables_win(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    assert envfile.write_dev_env(path) is True
    assert envfile.write_dev_env(path) is False  # never overwritten
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = envfile.parse(path.read_text())
    assert values["DEBUG"] == "true" and len(values["SECRET_KEY"]) >= 50
    monkeypatch.setenv("DEBUG", "false")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    applied = envfile.load(path)
    assert os.environ["DEBUG"] == "false" and "DEBUG" not in applied
    assert os.environ["SECRET_KEY"] == values["SECRET_KEY"]


def test_commands_work_as_typed_after_the_first_run(tmp_path):
    env = _env(tmp_path)
    first = _run(["-m", "config.envfile"], env)
    assert first.returncode == 0 and (tmp_path / ".env").is_file(), first.stderr
    assert _run(["manage.py", "migrate", "--noinput", "-v0"], env).returncode == 0
    made = _run(
        ["manage.py", "createsuperuser", "--noinput"],
        {
            **env,
            "DJANGO_SUPERUSER_EMAIL": "boss@example.com",
            "DJANGO_SUPERUSER_USERNAME": "boss",
            "DJANGO_SUPERUSER_PASSWORD": "a-Long-pass-42",
        },
    )
    assert made.returncode == 0, made.stderr
    shown = _run(["-m", "config.firstrun", "8123"], env)
    assert shown.returncode == 0, shown.stderr
    for word in ("http://127.0.0.1:8123/", "/admin/", "Broker:", "Storage:", "Mail:"):
        assert word in shown.stdout
    assert envfile.parse((tmp_path / ".env").read_text())["SECRET_KEY"] not in shown.stdout


def test_without_env_file_production_refuses_the_dev_secret(tmp_path):
    result = _run(["manage.py", "check"], _env(tmp_path))
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_redis_broker_on_a_fresh_var_dir_creates_the_sqlite_folder(tmp_path):
    env = _env(tmp_path, REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"))
    _run(["-m", "config.envfile"], env)
    result = _run(["manage.py", "migrate", "--noinput", "-v0"], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "db.sqlite3").is_file()
