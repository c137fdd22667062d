"""Retries, deadlines and fail-over around model providers.

``ResilientProvider`` gives every call one total deadline (``ModelSettings.timeout_seconds``)
and retries what retrying can fix — 429, 5xx, timeouts, cut connections — with tenacity,
waiting what ``Retry-After`` asks (seconds or an HTTP date) or backing off exponentially. It
never retries once streamed text has reached ``on_delta``: a second attempt would say it
twice, so the error goes up and the fallback chain answers instead.

``FallbackProvider`` asks each provider in turn until one answers; the response's ``model``
says which one did.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bot.providers.base import DeltaSink, ModelProvider, ModelRequest, ModelResponse, ProviderError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


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
        delivered = False
        sink: DeltaSink | None = None
        if on_delta is not None:
            forward = on_delta

            async def sink(text: str) -> None:
                nonlocal delivered
                if text:
                    delivered = True
                await forward(text)

        def worth_retrying(exc: BaseException) -> bool:
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

    async def _attempt(self, request: ModelRequest, sink: DeltaSink | None) -> ModelResponse:
        try:
            return await self.inner.complete(request, sink)
        except (ProviderError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a provider bug must fail over, not crash the turn
            log.exception("model provider %s failed unexpectedly", self.name)
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc


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
        for position, provider in enumerate(self.providers):
            try:
                response = await provider.complete(request, on_delta)
            except Exception as exc:  # noqa: BLE001 - whatever broke, the next provider answers
                failures.append(f"{provider.name}: {exc}")
                if position < last:
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
