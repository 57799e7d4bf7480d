"""Structured logs: every line carries the job id it is about (torch-free).

``job_context(job_id)`` sets the id for the code it wraps (a ``ContextVar``: per thread and
per asyncio task); ``JobIdFilter`` copies it onto each record as ``job_id``. Two formats,
chosen by ``TRAINABILITY_LOG_FORMAT``:

- ``text`` (default): ``ts=... level=INFO logger=worker.runtime.attempt job_id=... msg="..."``
- ``json``: one JSON object per line with the same fields (plus ``exc`` for tracebacks).

``configure_logging`` installs them on the root logger (the API process); Celery workers
install them on the handlers Celery sets up (``worker/runtime/reaper.py`` connects the signal).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

job_id_var: ContextVar[str | None] = ContextVar("trainability_job_id", default=None)

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else was passed as ``extra=`` and is logged too.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "job_id",
}


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Log lines emitted inside carry ``job_id``."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


class JobIdFilter(logging.Filter):
    """Adds ``record.job_id`` (the current job, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
    }
    job_id = getattr(record, "job_id", None)
    if job_id:
        fields["job_id"] = job_id
    fields["msg"] = record.getMessage()
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class KeyValueFormatter(logging.Formatter):
    """``key=value`` pairs; values with spaces or quotes are JSON-quoted."""

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in _fields(record).items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if not text or any(c in text for c in ' "=\n'):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else KeyValueFormatter()


def structure_handlers(logger: logging.Logger, fmt: LogFormat) -> None:
    """Give every handler of ``logger`` our formatter and the job id filter."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(fmt))
        if not any(isinstance(f, JobIdFilter) for f in handler.filters):
            handler.addFilter(JobIdFilter())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (like ``logging.lastResort``)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(fmt: LogFormat, level: int | str = logging.INFO) -> None:
    """Root logging for the API process, unless someone configured the root logger already
    (a test runner, an embedding application): one stderr handler with our format."""
    root = logging.getLogger()
    if any(not isinstance(h, _StderrHandler) for h in root.handlers):
        return
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(formatter(fmt))
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    root.setLevel(level)
