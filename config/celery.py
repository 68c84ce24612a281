"""The Celery application. Settings come from Django's settings under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("easel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect(dispatch_uid="easel_close_old_connections")
def _close_old_connections(task=None, **kwargs) -> None:
    """What Django does after each request: keep the connection unless it broke or is older
    than CONN_MAX_AGE. (CELERY_DB_REUSE_MAX stops Celery closing it after every task.)
    Not for eager tasks, which run inside the caller's request or test transaction."""
    if task is None or getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
