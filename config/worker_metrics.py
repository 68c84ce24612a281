"""A Celery worker's side of /metrics (issue #16), started in the worker's main process.

- Heartbeat: every EASEL_WORKER_HEARTBEAT_SECONDS (default 15; 0 = off) the worker records that
  it is alive; every web node's /metrics shows it (config/metrics.py).
- EASEL_WORKER_METRICS_PORT (unset = off): this node's pipeline instruments (queue wait,
  provider latency, finished and failed by provider, generator/instruments.py), summed over the
  pool's processes (config/metrics_env.py), served by prometheus_client's own HTTP server on
  EASEL_WORKER_METRICS_ADDR (default 127.0.0.1: expose it to the scraper only).
"""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import worker_ready, worker_shutdown
from prometheus_client import start_http_server

from config.metrics_node import node_registry, record_heartbeat

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _beat(worker: str, every: float) -> None:
    while not _stop.is_set():
        try:
            record_heartbeat(worker, every)
        except Exception:  # a cache outage must not stop the worker; the next beat tries again
            logger.warning("worker heartbeat not recorded", exc_info=True)
        _stop.wait(every)


@worker_ready.connect(dispatch_uid="easel_worker_metrics")
def start(sender=None, **kwargs) -> None:
    worker = getattr(sender, "hostname", None) or os.uname().nodename
    every = float(os.environ.get("EASEL_WORKER_HEARTBEAT_SECONDS", "15") or 0)
    if every > 0:
        threading.Thread(target=_beat, args=(worker, every), daemon=True, name="heartbeat").start()
    port = os.environ.get("EASEL_WORKER_METRICS_PORT")
    if port:
        addr = os.environ.get("EASEL_WORKER_METRICS_ADDR", "127.0.0.1")
        start_http_server(int(port), addr=addr, registry=node_registry())
        logger.info("worker metrics on http://%s:%s/metrics", addr, port)


@worker_shutdown.connect(dispatch_uid="easel_worker_metrics_stop")
def stop(**kwargs) -> None:
    _stop.set()
