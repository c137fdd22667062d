"""One rate limiter shared by every request this process sends to Intercom.

Intercom counts calls per app over short windows and answers ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds) on every response, 429 on
excess. The limiter reads those headers and, once the remaining budget falls to ``headroom``
calls, spaces requests evenly until the window resets, so the daemon slows down before it is
refused. After a 429 every request waits out ``Retry-After`` (or the reset time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from bot.retry import parse_retry_after

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60.0


class RateLimiter:
    def __init__(self, *, headroom: int = 100, clock: Callable[[], float] = time.time):
        self._headroom = headroom
        self._clock = clock
        self._lock = asyncio.Lock()
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        """Wait until one more request may go out."""
        async with self._lock:
            delay = self._delay()
            if delay > 0:
                self.waited_seconds += delay
                await asyncio.sleep(delay)
            if self._remaining is not None:
                self._remaining = max(0, self._remaining - 1)

    def _delay(self) -> float:
        now = self._clock()
        if self._blocked_until > now:
            return min(self._blocked_until - now, MAX_WAIT_SECONDS)
        if self._remaining is None or self._reset_at is None or self._reset_at <= now:
            return 0.0
        if self._remaining > self._headroom:
            return 0.0
        window = self._reset_at - now
        if self._remaining <= 0:
            return min(window, MAX_WAIT_SECONDS)
        # Spread what is left of the budget over what is left of the window.
        return min(window / (self._remaining + 1), MAX_WAIT_SECONDS)

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Learn from a response; returns the seconds to wait before retrying a 429."""
        remaining = _int(headers.get("x-ratelimit-remaining"))
        reset = _float(headers.get("x-ratelimit-reset"))
        if remaining is not None:
            self._remaining = remaining
        if reset is not None:
            self._reset_at = reset
        if status != 429:
            return None
        wait = parse_retry_after(headers.get("retry-after"))
        if wait is None and reset is not None:
            wait = max(0.0, reset - self._clock())
        wait = min(wait if wait is not None else 1.0, MAX_WAIT_SECONDS)
        self._blocked_until = max(self._blocked_until, self._clock() + wait)
        log.warning("Intercom rate limit hit; pausing requests for %.1fs", wait)
        return wait


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
