"""Structured logging: JSON lines (or plain text on a terminal), each line of a turn carrying
its thread and run ids through context variables. Only the CLI calls ``configure``."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_thread_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("thread_id", default=None)
_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)


@contextmanager
def bind_turn(*, thread_id: str, run_id: str) -> Iterator[None]:
    """Every log line inside carries these ids (tasks spawned inside inherit them)."""
    thread_token = _thread_id.set(thread_id)
    run_token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(run_token)
        _thread_id.reset(thread_token)


class TurnIdsFilter(logging.Filter):
    """Stamps the current turn's thread and run ids on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.thread_id = _thread_id.get()
        record.run_id = _run_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("thread_id", "run_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{key}={getattr(record, key)}" for key in ("thread_id", "run_id") if getattr(record, key, None)
        )
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f"  [{ids}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(TurnIdsFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
