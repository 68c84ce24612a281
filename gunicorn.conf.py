"""Gunicorn settings for production (docs/DEPLOY.md). `gunicorn -c gunicorn.conf.py config.wsgi`.

gthread, not sync: a sync worker is tied up by one connection that opens and sends nothing (for
`timeout` seconds), so a few idle sockets stall every page. This gunicorn's gthread hands each
accepted connection to a thread at once (workers/gthread.py `accept`), so an idle socket holds a
thread: many cheap threads (blocked in recv, not working) absorb them, and the reverse proxy of
docs/DEPLOY.md (which buffers whole requests) protects against more. tests/test_gunicorn.py opens 50 idle sockets and still
gets pages.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
worker_connections = 1000
keepalive = 5
timeout = 30
graceful_timeout = 30
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus (config/metrics_env.py): every worker process writes its metrics to one folder
# that /metrics sums up. Set before the workers load the app; a dead worker's live gauges go.
from config import metrics_env  # noqa: E402

metrics_env.prepare("web")

from prometheus_client import multiprocess  # noqa: E402 (after prepare: it reads the folder)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
