"""Where a node's processes share their Prometheus metrics (issue #16).

prometheus_client's multiprocess mode (https://prometheus.github.io/client_python/multiprocess/):
every process of a node (gunicorn's workers, a Celery worker's pool) writes its metrics to files
in PROMETHEUS_MULTIPROC_DIR, and the node's endpoint adds them up. The library reads the variable
when it is first imported, so `prepare` runs before anything imports it: gunicorn.conf.py (the
master, before it loads the app) and config/celery.py (a worker, before Django starts).

Standard library only: nothing here may import prometheus_client.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from config import envfile  # standard library only

BASE_DIR = Path(__file__).resolve().parent.parent


def enabled() -> bool:
    """Metrics are off unless a scrape token (web) or a worker metrics port is set."""
    return bool(
        os.environ.get("EASEL_METRICS_TOKEN") or os.environ.get("EASEL_WORKER_METRICS_PORT")
    )


def prepare(role: str) -> str | None:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty folder for this node's `role` ("web" or
    "worker") under EASEL_VAR_DIR, unless the operator set it. The folder is emptied: files
    left by the processes of an earlier start would be counted again. Returns the folder."""
    envfile.load_default()  # the local .env may hold the switches
    if not enabled():
        return None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    else:
        var_dir = Path(os.environ.get("EASEL_VAR_DIR", BASE_DIR / "var")).resolve()
        folder = var_dir / "metrics" / role
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)
