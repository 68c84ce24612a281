"""The local `.env` file: a tiny reader for settings, and the writer `make run` calls first.

`.env` is for development only. `make run` writes it on the first run (mode 0600, a generated
SECRET_KEY, DEBUG=true) so that every later command — `manage.py createsuperuser`, `addmodel`,
the worker — reads the same settings without anything typed in the shell. Real environment
variables always win over the file. Production has no `.env` and sets real variables.

`EASEL_ENV_FILE` names another file; set it to an empty value to read none (`make test` does).
Only `NAME=value` lines are read: `#` starts a comment line, a value may be wrapped in single or
double quotes, and there is no interpolation.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env_file_path() -> Path | None:
    chosen = os.environ.get("EASEL_ENV_FILE")
    if chosen is None:
        return BASE_DIR / ".env"
    return Path(chosen) if chosen else None


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if name.isidentifier():
            values[name] = value
    return values


def load(path: Path | None = None) -> dict[str, str]:
    """Put the file's variables into os.environ where they are not already set; returns the
    ones it set. A missing file is no error (production has none)."""
    path = path if path is not None else env_file_path()
    if path is None or not path.is_file():
        return {}
    applied = {}
    for name, value in parse(path.read_text(encoding="utf-8")).items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied


def load_default() -> str:
    """Load the chosen file (settings call this first); the path read, or "" for none."""
    path = env_file_path()
    if path is None or not path.is_file():
        return ""
    load(path)
    return str(path)


def make_sqlite_folder(database: dict) -> None:
    """SQLite cannot create its folder: make var/ (or EASEL_VAR_DIR) whatever the broker is,
    so `REDIS_URL=… make run` starts on a fresh clone too."""
    if not database["ENGINE"].endswith("sqlite3"):
        return
    name = str(database["NAME"])
    if name and name != ":memory:" and not name.startswith("file:"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)


DEV_TEMPLATE = """\
# Written by the first `make run` for local development only (git-ignored, mode 0600).
# Every manage.py command, the worker and the web server read it; real environment variables
# win. Production does not use this file: set real variables (see .env.example).
DEBUG=true
SECRET_KEY={secret}
"""


def write_dev_env(path: Path | None = None) -> bool:
    """Create the development `.env` unless it exists; True when it was written."""
    path = path if path is not None else env_file_path()
    if path is None or path.exists():
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(DEV_TEMPLATE.format(secret=secrets.token_urlsafe(50)))
    os.chmod(path, 0o600)  # whatever the umask
    return True


if __name__ == "__main__":  # `python -m config.envfile`: what `make run` does first
    target = env_file_path()
    if write_dev_env(target):
        print(f"  Wrote {target} (DEBUG=true and a new SECRET_KEY, mode 0600, git-ignored).")
    sys.exit(0)
