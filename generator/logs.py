"""Structured logs: LOG_FORMAT=json writes one JSON object per line (time, level, logger,
message, generation, provider; exc when there is a traceback). Standard library only, so the
logging configuration can load it before Django's apps are ready.

`generation` (the public id) and `provider` come from the record (`extra=`) or from the task
being run: config.celery binds them around every task from the message headers.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

_context: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "easel_log_context", default=(None, None)
)


def bind(generation: str | None, provider: str | None) -> None:
    """Name the generation (public id) and provider of what this thread does now."""
    _context.set((str(generation) if generation else None, provider or None))


def context() -> tuple[str | None, str | None]:
    return _context.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        generation, provider = _context.get()
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "generation": getattr(record, "generation", None) or generation,
            "provider": getattr(record, "provider", None) or provider,
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)
