"""Structured logging: JSON lines (or plain text on a terminal), each line of a turn carrying
its thread and run ids through context variables. Only the CLI calls ``configure``."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from bot.redact import mask_text

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


class SecretsFilter(logging.Filter):
    """The last line of defence: whatever a line says, credentials in URLs
    (``scheme://user:password@``), secret-looking query values and the configured secrets
    themselves are masked before the line is written — exception text included."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = mask_text(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters print ``exc_text`` when it is set (the standard library's contract).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, self._secrets)
        return True


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return None


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
        exc = _exception_text(self, record)
        if exc:
            entry["exc"] = exc
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{key}={getattr(record, key)}" for key in ("thread_id", "run_id") if getattr(record, key, None)
        )
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f"  [{ids}]"
        exc = _exception_text(self, record)
        if exc:
            line += "\n" + exc
        return line


def configure(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Log to stderr; ``secrets`` (the configured tokens and passwords) never reach a line."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(TurnIdsFilter())
    handler.addFilter(SecretsFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
