"""The Celery application. Settings come from Django's settings under the CELERY_ namespace."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_init,
    task_postrun,
    task_prerun,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config import metrics_env
from generator import logs

# Before Django starts and anything imports prometheus_client (config/metrics_env.py): a
# worker's pool processes share one metrics folder.
if "worker" in sys.argv:
    metrics_env.prepare("worker")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Celery's own default (task_default_queue): every provider not in EASEL_PROVIDER_QUEUES.
DEFAULT_QUEUE = "celery"

app = Celery("easel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Deploys and broker blips (issue 16). SIGTERM is Celery's warm shutdown: "the worker will finish
# all currently executing tasks before it actually terminates" (Workers Guide, Stopping the
# worker); acks_late tasks it reserved but did not start (a poll's countdown) go back to the
# broker. A lost broker connection must not kill a task mid-request either: Celery 5.x keeps it
# running unless worker_cancel_long_running_tasks_on_connection_loss, whose default "will be set
# to True by default in Celery 6.0" (celery.worker.consumer.consumer); a cancelled submit could
# only end failed. Its message is redelivered and found claimed, so nothing runs twice.
app.conf.worker_cancel_long_running_tasks_on_connection_loss = False


def provider_queues(text: str) -> dict[str, str]:
    """EASEL_PROVIDER_QUEUES: "replicate=slow,meteron=slow" → {"replicate": "slow", ...}."""
    queues: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        provider, sep, queue = (s.strip() for s in item.partition("="))
        if not (provider and sep and queue):
            raise ImproperlyConfigured(
                f"EASEL_PROVIDER_QUEUES takes provider=queue pairs separated by commas, "
                f"got {item!r}"
            )
        queues[provider] = queue
    return queues


def task_queues(queues: dict[str, str]) -> list[Queue] | None:
    """The queues a worker started without -Q consumes: the default queue and every provider
    queue (None = Celery's default, the default queue only). Each has its own exchange and
    routing key, as Celery makes for a queue it creates on demand, so a message goes to one
    queue only. On Redis each queue keeps its priority levels (priority_steps)."""
    if not queues:
        return None
    names = dict.fromkeys([DEFAULT_QUEUE, *queues.values()])
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in names]


@task_prerun.connect(dispatch_uid="easel_log_context")
def _bind_log_context(task=None, **kwargs) -> None:
    """Every log line written while a pipeline task runs names its generation and provider,
    which the sender put in the message headers (generator.tasks._route)."""
    request = getattr(task, "request", None)
    logs.bind(getattr(request, "easel_generation", None), getattr(request, "easel_provider", None))


@task_postrun.connect(dispatch_uid="easel_close_old_connections")
def _close_old_connections(task=None, **kwargs) -> None:
    """What Django does after each request: keep the connection unless it broke or is older
    than CONN_MAX_AGE. (CELERY_DB_REUSE_MAX stops Celery closing it after every task.)
    Not for eager tasks, which run inside the caller's request or test transaction."""
    logs.bind(None, None)
    if task is None or getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@after_setup_logger.connect(dispatch_uid="easel_json_worker_logs")
@after_setup_task_logger.connect(dispatch_uid="easel_json_task_logs")
def _json_worker_logs(logger=None, **kwargs) -> None:
    """The worker replaces Django's LOGGING handlers with its own (worker_hijack_root_logger);
    with LOG_FORMAT=json they write one JSON object per line too."""
    if logger is not None and getattr(settings, "LOG_FORMAT", "text") == "json":
        for handler in logger.handlers:
            handler.setFormatter(logs.JsonFormatter())


@celeryd_init.connect(dispatch_uid="easel_json_early_warnings")
def _json_early_warnings(**kwargs) -> None:
    """Warnings the worker gives before its logging is set up (running as root, say) are JSON
    lines too with LOG_FORMAT=json; once logging is set up they go through it."""
    if getattr(settings, "LOG_FORMAT", "text") != "json":
        return
    formatter = logs.JsonFormatter()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = f"{filename}:{lineno}: {category.__name__}: {message}"
        record = logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, (), None)
        (file or sys.stderr).write(formatter.format(record) + "\n")

    warnings.showwarning = show
