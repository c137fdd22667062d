"""Retries, deadlines and fail-over around model providers.

``ResilientProvider`` gives every call one total deadline (``ModelSettings.timeout_seconds``)
and retries what retrying can fix — 429, 5xx, timeouts, cut connections — with tenacity,
waiting what ``Retry-After`` asks (seconds or an HTTP date) or backing off exponentially. It
never retries once streamed text has reached ``on_delta``: a second attempt would say it
twice, so the error goes up and the fallback chain answers instead.

``CircuitBreaker`` stops asking a provider that keeps failing: after
``ModelSettings.breaker_failures`` transient failures in a row (the kinds ``ResilientProvider``
retries, or no answer before the turn's deadline) it refuses calls at once with
``CircuitOpen`` for ``breaker_cooldown_seconds``, then lets one trial call through (half-open)
whose outcome closes or re-opens it. Its state lives in this process only: each replica learns
on its own that a provider is down, which costs each at most ``breaker_failures`` slow turns.

``FallbackProvider`` asks each provider in turn until one answers; the response's ``model``
says which one did. When the one that failed had streamed part of its answer, the sink hears
``reset()`` before the next provider answers, so what the customer watches is withdrawn and
replaced, never two answers run together.

``TURN_TIMEOUT`` carries the running turn's ``asyncio.Timeout`` down to the breaker, so a call
cancelled because the turn's deadline passed counts as the provider's failure, while one
cancelled for any other reason (shutdown) does not.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from enum import StrEnum

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bot.providers.base import DeltaSink, ModelProvider, ModelRequest, ModelResponse, ProviderError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

TURN_TIMEOUT: ContextVar[asyncio.Timeout | None] = ContextVar("turn_timeout", default=None)
"""The deadline of the turn the current task is running, set by the turn runner."""


class ResilientProvider:
    """Wraps a provider with a total deadline per call and retries on transient failures."""

    def __init__(
        self,
        inner: ModelProvider,
        *,
        timeout_seconds: float,
        max_retries: int,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._sleep = sleep

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_seconds
        sink = None if on_delta is None else WatchedSink(on_delta)

        def worth_retrying(exc: BaseException) -> bool:
            delivered = sink is not None and sink.delivered
            return isinstance(exc, ProviderError) and exc.retryable and not delivered

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ProviderError) and exc.retry_after is not None:
                return exc.retry_after
            return self._backoff(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > self.max_retries:
                return True
            # Waiting past the deadline helps nobody: fail over now instead.
            upcoming = state.upcoming_sleep
            return loop.time() + upcoming >= deadline

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "model call to %s failed (%s); retry %d/%d in %.2fs",
                self.name,
                exc,
                state.attempt_number,
                self.max_retries,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(worth_retrying),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        response: ModelResponse | None = None
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                async for attempt in retrying:
                    with attempt:
                        response = await self._attempt(request, sink)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise ProviderError(
                f"{self.name}: no answer within {self.timeout_seconds:g}s", retryable=True
            ) from None
        assert response is not None
        return response

    async def _attempt(self, request: ModelRequest, sink: WatchedSink | None) -> ModelResponse:
        try:
            return await self.inner.complete(request, sink)
        except (ProviderError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a provider bug must fail over, not crash the turn
            log.exception("model provider %s failed unexpectedly", self.name)
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc


class WatchedSink:
    """A ``DeltaSink`` that forwards to another and remembers whether any text went through
    since the start or the last reset."""

    def __init__(self, inner: DeltaSink) -> None:
        self._inner = inner
        self.delivered = False

    async def __call__(self, text: str, /) -> None:
        if text:
            self.delivered = True
        await self._inner(text)

    async def reset(self) -> None:
        self.delivered = False
        await self._inner.reset()


class CircuitOpen(ProviderError):
    """Refused without calling the provider: its circuit breaker is open."""


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[[str, BreakerState], None]


class CircuitBreaker:
    """Wraps a provider; refuses calls with ``CircuitOpen`` while it keeps failing.

    Transient failures count (a retryable ``ProviderError``, an unexpected exception, a call
    cut off by the turn's deadline); any answer, including an error the provider chose to
    return (400, 401), proves it reachable and resets the count. ``on_change(name, state)``
    hears every transition (the metrics gauge) and the initial state.
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        failures: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: BreakerListener | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError("a circuit breaker needs failures >= 1")
        self.inner = inner
        self.name = inner.name
        self.failures = failures
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._on_change = on_change
        self.state = BreakerState.CLOSED
        self._failed_in_a_row = 0
        self._opened_at = 0.0
        self._trial_running = False
        if on_change is not None:
            on_change(self.name, self.state)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        self._admit()
        try:
            response = await self.inner.complete(request, on_delta)
        except asyncio.CancelledError:
            timeout = TURN_TIMEOUT.get()
            if timeout is not None and timeout.expired():
                self._failed("no answer before the turn's deadline")
            else:
                self._trial_running = False  # e.g. shutdown: says nothing about the provider
            raise
        except ProviderError as exc:
            if exc.retryable:
                self._failed(str(exc))
            else:
                self._succeeded()
            raise
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            raise
        self._succeeded()
        return response

    def _admit(self) -> None:
        if self.state is BreakerState.CLOSED:
            return
        if self.state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.cooldown_seconds:
                raise CircuitOpen(f"{self.name}: circuit open (failing); not called")
            self._move(BreakerState.HALF_OPEN)
            log.info("model provider %s: cool-down over; one trial call decides", self.name)
        if self._trial_running:
            raise CircuitOpen(f"{self.name}: circuit half-open, its trial call is running")
        self._trial_running = True

    def _failed(self, reason: str) -> None:
        self._trial_running = False
        self._failed_in_a_row += 1
        if self.state is BreakerState.HALF_OPEN:
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)
            log.info(
                "model provider %s: trial call failed (%s); skipped for another %gs",
                self.name,
                reason,
                self.cooldown_seconds,
            )
        elif self.state is BreakerState.CLOSED and self._failed_in_a_row >= self.failures:
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)
            log.warning(
                "model provider %s: circuit open after %d failures in a row (last: %s); "
                "turns go to the fallback for %gs",
                self.name,
                self._failed_in_a_row,
                reason,
                self.cooldown_seconds,
            )

    def _succeeded(self) -> None:
        self._trial_running = False
        self._failed_in_a_row = 0
        if self.state is not BreakerState.CLOSED:
            # A call admitted before the breaker opened may answer late: it proves the
            # provider up just as well as the trial would.
            self._move(BreakerState.CLOSED)
            log.info("model provider %s: answering again; circuit closed", self.name)

    def _move(self, state: BreakerState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(self.name, state)


class FallbackProvider:
    """Asks ``providers`` in order until one answers. Takes ownership of all of them.

    A provider that fails for good (retries exhausted, deadline passed, a non-retryable
    error, an unexpected exception) hands the request to the next; the response's ``model``
    names the provider that answered (``"<provider>:<model>"``).
    """

    def __init__(self, providers: Sequence[ModelProvider]) -> None:
        if not providers:
            raise ValueError("FallbackProvider needs at least one provider")
        self.providers = tuple(providers)
        self.name = "+".join(p.name for p in self.providers)

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for provider in self.providers:
            try:
                await provider.aclose()
            except Exception as exc:  # noqa: BLE001 - close every provider even if one fails
                errors.append(exc)
        if errors:
            raise errors[0]

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        failures: list[str] = []
        last = len(self.providers) - 1
        sink = None if on_delta is None else WatchedSink(on_delta)
        for position, provider in enumerate(self.providers):
            if sink is not None and sink.delivered:
                # The one that failed had streamed part of its answer: withdraw it before the
                # next one answers afresh, or the customer would read both run together.
                await sink.reset()
            try:
                response = await provider.complete(request, sink)
            except Exception as exc:  # noqa: BLE001 - whatever broke, the next provider answers
                failures.append(f"{provider.name}: {exc}")
                # An open breaker said so once already; saying it per call would be spam.
                if position < last and not isinstance(exc, CircuitOpen):
                    log.warning(
                        "model provider %s failed (%s); falling back to %s",
                        provider.name,
                        exc,
                        self.providers[position + 1].name,
                    )
                continue
            return replace(response, model=_answered_by(provider.name, response.model))
        raise ProviderError("every model provider failed: " + "; ".join(failures))


def _answered_by(provider: str, model: str) -> str:
    if not model or model == provider:
        return provider
    if model.startswith(provider + ":"):
        return model
    return f"{provider}:{model}"
