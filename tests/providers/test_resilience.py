"""Retries, the total deadline and the fallback chain, against the scripted model server."""

from __future__ import annotations

import logging
from email.utils import formatdate

import pytest

from bot.providers.base import ChatMessage, ModelRequest, ProviderError
from bot.providers.openai import OpenAIProvider
from bot.providers.resilience import FallbackProvider, ResilientProvider
from bot.providers.transport import parse_retry_after
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.providers.conftest import API_KEY, CannedProvider

REQUEST = ModelRequest(messages=(ChatMessage("user", "where is my order?"),), stream=True)


class RecordedSleeps:
    """Stands in for asyncio.sleep: records what the retry policy asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def resilient(
    server: ScriptedModelServer,
    sleeps: RecordedSleeps | None = None,
    *,
    timeout: float = 10.0,
    max_retries: int = 3,
) -> ResilientProvider:
    inner = OpenAIProvider(api_key=API_KEY, base_url=server.url, timeout_seconds=timeout)
    if sleeps is None:
        return ResilientProvider(inner, timeout_seconds=timeout, max_retries=max_retries)
    return ResilientProvider(
        inner,
        timeout_seconds=timeout,
        max_retries=max_retries,
        backoff_initial=0.01,
        backoff_max=0.02,
        sleep=sleeps,
    )


async def test_429_then_success_honours_retry_after(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(
        ScriptedReply.error(429, retry_after="1"), ScriptedReply.say("Your order shipped.")
    )
    sleeps = RecordedSleeps()
    provider = resilient(model_server, sleeps)
    try:
        response = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert response.text == "Your order shipped."
    assert len(model_server.chat_requests) == 2
    assert sleeps.waits == [1.0]


async def test_retry_after_as_an_http_date(model_server: ScriptedModelServer) -> None:
    import time

    when = formatdate(time.time() + 5, usegmt=True)
    model_server.enqueue(ScriptedReply.error(503, retry_after=when), ScriptedReply.say("ok"))
    sleeps = RecordedSleeps()
    provider = resilient(model_server, sleeps)
    try:
        response = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert response.text == "ok"
    (wait,) = sleeps.waits
    assert 1.0 <= wait <= 5.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_500s_are_retried_with_backoff(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(
        ScriptedReply.error(500), ScriptedReply.error(502), ScriptedReply.say("fine now")
    )
    sleeps = RecordedSleeps()
    provider = resilient(model_server, sleeps)
    try:
        response = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert response.text == "fine now"
    assert len(model_server.chat_requests) == 3
    assert len(sleeps.waits) == 2 and all(0 < w <= 0.02 for w in sleeps.waits)


async def test_retries_stop_after_max_retries(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(*[ScriptedReply.error(500) for _ in range(5)])
    provider = resilient(model_server, RecordedSleeps(), max_retries=2)
    try:
        with pytest.raises(ProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert len(model_server.chat_requests) == 3


async def test_client_errors_are_not_retried(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.error(400), ScriptedReply.say("never asked"))
    provider = resilient(model_server, RecordedSleeps())
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert not caught.value.retryable
    assert len(model_server.chat_requests) == 1


async def test_no_retry_once_text_was_streamed(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(
        ScriptedReply.say("Half an answer that gets cut", cut_after=3),
        ScriptedReply.say("A second answer would duplicate text"),
    )
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    provider = resilient(model_server, RecordedSleeps())
    try:
        with pytest.raises(ProviderError):
            await provider.complete(REQUEST, on_delta)
    finally:
        await provider.aclose()
    assert len(model_server.chat_requests) == 1
    assert model_server.pending == 1
    assert "".join(deltas) == "Half an answer that gets cut"[: len("".join(deltas))]


async def test_a_cut_stream_is_retried_when_nothing_was_delivered(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(
        ScriptedReply.say("cut before any text", cut_after=1), ScriptedReply.say("whole")
    )
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    provider = resilient(model_server, RecordedSleeps())
    try:
        response = await provider.complete(REQUEST, on_delta)
    finally:
        await provider.aclose()
    assert response.text == "whole"
    assert "".join(deltas) == "whole"
    assert len(model_server.chat_requests) == 2


async def test_hung_model_falls_back_and_the_request_is_abandoned(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(ScriptedReply.say("warm"), ScriptedReply.hanging(), ScriptedReply.hanging())
    offline = CannedProvider("Here is what our help center says.")
    chain = FallbackProvider([resilient(model_server, timeout=1.0), offline])
    try:
        # a first answer opens the pooled connection, so the hung request surely reaches the
        # server before the deadline even on a loaded machine
        warm = await chain.complete(REQUEST)
        response = await chain.complete(REQUEST)
        await model_server.wait_abandoned()
    finally:
        await chain.aclose()
    assert warm.text == "warm"
    assert response.text == "Here is what our help center says."
    assert response.model == "offline"
    assert len(offline.calls) == 1
    assert len(model_server.chat_requests) == 2  # the deadline left no room for a retry
    assert model_server.abandoned == 1
    assert offline.closed


async def test_retry_after_past_the_deadline_fails_over_without_waiting(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(ScriptedReply.error(429, retry_after="120"), ScriptedReply.say("too late"))
    sleeps = RecordedSleeps()
    offline = CannedProvider()
    chain = FallbackProvider([resilient(model_server, sleeps, timeout=5), offline])
    try:
        response = await chain.complete(REQUEST)
    finally:
        await chain.aclose()
    assert response.model == "offline"
    assert sleeps.waits == []
    assert len(model_server.chat_requests) == 1


async def test_fallback_records_who_answered(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.say("from the primary"))
    offline = CannedProvider()
    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), offline])
    try:
        response = await chain.complete(REQUEST)
    finally:
        await chain.aclose()
    assert response.text == "from the primary"
    assert response.model == "openai:scripted-model"
    assert offline.calls == []


async def test_fallback_after_a_non_retryable_error(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.error(401, message="bad key"))
    offline = CannedProvider()
    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), offline])
    try:
        response = await chain.complete(REQUEST)
    finally:
        await chain.aclose()
    assert response.model == "offline"
    assert len(model_server.chat_requests) == 1


async def test_every_provider_failing_raises(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.error(400))

    class Broken(CannedProvider):
        async def complete(self, request, on_delta=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug in a provider")

    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), Broken(name="broken")])
    try:
        with pytest.raises(ProviderError) as caught:
            await chain.complete(REQUEST)
    finally:
        await chain.aclose()
    assert "openai" in str(caught.value) and "broken" in str(caught.value)


async def test_api_key_never_in_logs_or_errors(
    model_server: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    model_server.enqueue(
        ScriptedReply.error(500, message=f"upstream echoed Bearer {API_KEY}"),
        ScriptedReply.error(429, retry_after="0", message=f"key {API_KEY} is rate limited"),
        ScriptedReply.error(401, message=f"invalid api key {API_KEY}"),
    )
    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), CannedProvider()])
    try:
        response = await chain.complete(REQUEST)
        direct = resilient(model_server, RecordedSleeps())
        model_server.enqueue(ScriptedReply.error(403, message=f"forbidden for {API_KEY}"))
        with pytest.raises(ProviderError) as caught:
            await direct.complete(REQUEST)
        await direct.aclose()
    finally:
        await chain.aclose()
    assert response.model == "offline"
    assert len(model_server.chat_requests) == 4
    assert API_KEY not in caplog.text
    assert API_KEY not in str(caught.value)
    assert "***" in str(caught.value)


async def test_the_deadline_cancels_a_slow_provider() -> None:
    import asyncio

    class Stuck(CannedProvider):
        def __init__(self) -> None:
            super().__init__(name="stuck")
            self.cancelled = asyncio.Event()

        async def complete(self, request, on_delta=None):  # type: ignore[no-untyped-def]
            try:
                await asyncio.Event().wait()
            finally:
                self.cancelled.set()
            raise AssertionError("unreachable")

    stuck = Stuck()
    provider = ResilientProvider(stuck, timeout_seconds=0.2, max_retries=3)
    with pytest.raises(ProviderError) as caught:
        await provider.complete(REQUEST)
    assert stuck.cancelled.is_set()
    assert "no answer within 0.2s" in str(caught.value)
    assert caught.value.retryable


async def test_outer_cancellation_is_not_swallowed(model_server: ScriptedModelServer) -> None:
    import asyncio

    model_server.enqueue(ScriptedReply.hanging())
    provider = resilient(model_server, timeout=30)
    task = asyncio.create_task(provider.complete(REQUEST), name="turn")
    try:
        while not model_server.chat_requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await model_server.wait_abandoned()
    finally:
        await provider.aclose()


class RecordedSink:
    """A delta sink that writes down what it hears, resets included."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    async def __call__(self, text: str, /) -> None:
        self.heard.append(text)

    async def reset(self) -> None:
        self.heard.append("<reset>")


async def test_a_fallback_after_a_partial_stream_resets_the_sink_first(
    model_server: ScriptedModelServer,
) -> None:
    # The role frame and two text frames, then the connection drops: "half an an" got through.
    model_server.enqueue(ScriptedReply.say("half an answer", chunk_size=5, cut_after=3))
    sink = RecordedSink()
    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), CannedProvider()])
    try:
        response = await chain.complete(REQUEST, sink)
    finally:
        await chain.aclose()
    assert response.model == "offline"
    split = sink.heard.index("<reset>")
    assert "".join(sink.heard[:split]) == "half an an"
    assert sink.heard[split + 1 :] == ["offline answer"]


async def test_a_fallback_after_a_failure_that_streamed_nothing_does_not_reset(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(ScriptedReply.error(401, message="bad key"))
    sink = RecordedSink()
    chain = FallbackProvider([resilient(model_server, RecordedSleeps()), CannedProvider()])
    try:
        await chain.complete(REQUEST, sink)
    finally:
        await chain.aclose()
    assert sink.heard == ["offline answer"]
