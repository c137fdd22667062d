"""The shared rate limiter: slows down before 429, waits out Retry-After after one."""

from __future__ import annotations

import pytest

from connectors.intercom.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record sleeps instead of sleeping (the limiter's clock is scripted too)."""
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr("connectors.intercom.ratelimit.asyncio.sleep", fake_sleep)
    return delays


async def test_plenty_of_budget_means_no_waiting(slept: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(headroom=10, clock=clock)
    limiter.observe(200, {"x-ratelimit-remaining": "500", "x-ratelimit-reset": str(clock.now + 10)})
    for _ in range(5):
        await limiter.acquire()
    assert slept == []


async def test_low_budget_spreads_requests_over_the_window(slept: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(headroom=10, clock=clock)
    limiter.observe(200, {"x-ratelimit-remaining": "4", "x-ratelimit-reset": str(clock.now + 10)})
    await limiter.acquire()
    await limiter.acquire()
    assert slept == [pytest.approx(10 / 5), pytest.approx(10 / 4)]


async def test_an_exhausted_budget_waits_for_the_reset(slept: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(headroom=10, clock=clock)
    limiter.observe(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(clock.now + 7)})
    await limiter.acquire()
    assert slept == [pytest.approx(7)]


async def test_a_429_pauses_everyone_for_retry_after(slept: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(headroom=0, clock=clock)
    assert limiter.observe(429, {"retry-after": "3"}) == 3
    await limiter.acquire()
    clock.now += 3
    await limiter.acquire()
    assert slept == [pytest.approx(3)]




def test_a_429_with_a_dated_retry_after_pauses_until_then_at_most_a_minute() -> None:
    """The header's date form is read too (``bot.retry.parse_retry_after``), and capped."""
    limiter = RateLimiter()
    assert limiter.observe(429, {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}) == 60.0
    assert limiter.observe(429, {"retry-after": "soon"}) == 1.0
