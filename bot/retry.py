"""What every call to another system shares about trying again.

``RemoteError`` is the one base of the errors that say whether a retry may help
(``retryable``) and how long the other side asked us to wait (``retry_after``):
``ActionError`` (a connector's action), ``ProviderError`` (a model call) and
``IntercomError`` (one Intercom request) keep their names and their defaults and derive from it.

``parse_retry_after`` reads a ``Retry-After`` header (delta-seconds or an HTTP date);
``wait_retry_after`` wraps a tenacity backoff so a retry never comes sooner than the
``retry_after`` the failed attempt carried.
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState
from tenacity.wait import wait_base

__all__ = ["RemoteError", "parse_retry_after", "wait_retry_after"]


class RemoteError(Exception):
    """A call to another system that failed. ``retryable``: trying again may work;
    ``retry_after``: seconds the other side asked us to wait first, if it said."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (a date
    without a zone is UTC, a past one is 0); ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class wait_retry_after(wait_base):  # lower case like tenacity's own waits
    """``backoff``, but never sooner than the failed attempt's ``RemoteError.retry_after``."""

    def __init__(self, backoff: wait_base) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RemoteError) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff
