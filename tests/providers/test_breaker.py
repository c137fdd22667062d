"""``CircuitBreaker``: consecutive transient failures open it, an open breaker refuses without
calling the provider, after the cool-down one trial call closes or re-opens it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import pytest

from bot.providers.base import ChatMessage, DeltaSink, ModelRequest, ModelResponse, ProviderError
from bot.providers.resilience import (
    TURN_TIMEOUT,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    FallbackProvider,
)
from tests.providers.conftest import CannedProvider

REQUEST = ModelRequest(messages=(ChatMessage("user", "hello"),))
DOWN = ProviderError("primary: HTTP 503", retryable=True)
REFUSED = ProviderError("primary: HTTP 400: bad request", retryable=False)


class Primary:
    """Answers from a script: a ``ModelResponse``, an exception to raise, or ``"hang"``."""

    name = "primary"

    def __init__(self) -> None:
        self.script: deque[ModelResponse | BaseException | str] = deque()
        self.calls = 0
        self.started = asyncio.Event()

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        self.calls += 1
        self.started.set()
        step = self.script.popleft() if self.script else ModelResponse(text="ok", model="m")
        if step == "hang":
            await asyncio.Event().wait()
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, ModelResponse)
        return step

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(
    primary: Primary, clock: Clock, heard: list[BreakerState] | None = None, failures: int = 3
) -> CircuitBreaker:
    return CircuitBreaker(
        primary,
        failures=failures,
        cooldown_seconds=30,
        clock=clock,
        on_change=None if heard is None else (lambda name, state: heard.append(state)),
    )


async def fail(provider: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ProviderError):
            await provider.complete(REQUEST)


async def test_opens_after_consecutive_failures_and_refuses_without_calling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.providers.resilience")
    primary, clock, heard = Primary(), Clock(), []
    circuit = breaker(primary, clock, heard)
    primary.script.extend([DOWN, DOWN, DOWN])
    await fail(circuit, 2)
    assert circuit.state is BreakerState.CLOSED
    await fail(circuit)
    assert circuit.state is BreakerState.OPEN and primary.calls == 3

    chain = FallbackProvider([circuit, CannedProvider()])
    for _ in range(20):
        answer = await chain.complete(REQUEST)
        assert answer.model == "offline"
    assert primary.calls == 3, "an open breaker does not call the provider"
    with pytest.raises(CircuitOpen):
        await circuit.complete(REQUEST)
    assert heard == [BreakerState.CLOSED, BreakerState.OPEN]
    # One line said it opened; twenty refused turns said nothing more.
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert "circuit open after 3 failures in a row" in caplog.records[0].getMessage()


async def test_an_answer_or_a_refusal_resets_the_count() -> None:
    primary, clock = Primary(), Clock()
    circuit = breaker(primary, clock)
    primary.script.extend([DOWN, DOWN, REFUSED, DOWN, DOWN, ModelResponse(text="up"), DOWN, DOWN])
    await fail(circuit, 3)  # the 400 proves the provider reachable
    await fail(circuit, 2)
    await circuit.complete(REQUEST)
    await fail(circuit, 2)
    assert circuit.state is BreakerState.CLOSED


async def test_an_unexpected_exception_counts_as_a_failure() -> None:
    primary, clock = Primary(), Clock()
    circuit = breaker(primary, clock, failures=1)
    primary.script.append(RuntimeError("provider bug"))
    with pytest.raises(RuntimeError):
        await circuit.complete(REQUEST)
    assert circuit.state is BreakerState.OPEN


async def test_after_the_cool_down_one_trial_decides() -> None:
    primary, clock, heard = Primary(), Clock(), []
    circuit = breaker(primary, clock, heard, failures=1)
    primary.script.append(DOWN)
    await fail(circuit)
    clock.now += 29.9
    with pytest.raises(CircuitOpen):
        await circuit.complete(REQUEST)

    clock.now += 0.2
    primary.script.append(DOWN)
    await fail(circuit)  # the trial fails: open for another cool-down
    assert circuit.state is BreakerState.OPEN and primary.calls == 2
    clock.now += 29.9
    with pytest.raises(CircuitOpen):
        await circuit.complete(REQUEST)
    assert primary.calls == 2

    clock.now += 0.2
    primary.script.append("hang")
    primary.started.clear()
    trial = asyncio.create_task(circuit.complete(REQUEST), name="trial")
    await primary.started.wait()
    assert circuit.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen, match="trial"):
        await circuit.complete(REQUEST)  # only one trial at a time
    trial.cancel()  # not the turn's deadline (shutdown, say): the trial slot is freed
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert circuit.state is BreakerState.HALF_OPEN

    answer = await circuit.complete(REQUEST)
    assert answer.text == "ok" and circuit.state is BreakerState.CLOSED
    assert heard == [
        BreakerState.CLOSED,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def test_a_call_cut_off_by_the_turn_deadline_is_a_failure() -> None:
    primary, clock = Primary(), Clock()
    circuit = breaker(primary, clock, failures=2)

    async def turn() -> None:
        primary.script.append("hang")
        timeout = asyncio.timeout(0.05)
        async with timeout:
            token = TURN_TIMEOUT.set(timeout)
            try:
                await circuit.complete(REQUEST)
            finally:
                TURN_TIMEOUT.reset(token)

    for _ in range(2):
        with pytest.raises(TimeoutError):
            await turn()
    assert circuit.state is BreakerState.OPEN


async def test_a_cancelled_call_outside_a_deadline_is_not_a_failure() -> None:
    primary, clock = Primary(), Clock()
    circuit = breaker(primary, clock, failures=1)
    primary.script.append("hang")
    call = asyncio.create_task(circuit.complete(REQUEST), name="call")
    await primary.started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert circuit.state is BreakerState.CLOSED


def test_needs_at_least_one_failure() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(Primary(), failures=0, cooldown_seconds=1)
