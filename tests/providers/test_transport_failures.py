"""Transport failures the scripted model servers cannot produce on cue (refused, DNS failure, a
reset after the request went out, a timeout mid-stream), with ``aioresponses`` in place of the
network, for the openai, xai-support-agent and ingram providers behind ``ResilientProvider``.

A model call has no effect on the customer until its words reach them: while nothing has been
streamed, every failure is retried; once some words have, a retry would say them twice, so the
call ends in a clear ``ProviderError`` (the fallback chain answers). The API key is never in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from bot.providers.base import ChatMessage, ModelProvider, ModelRequest, ProviderError
from bot.providers.ingram import IngramProvider
from bot.providers.openai import OpenAIProvider
from bot.providers.resilience import ResilientProvider
from bot.providers.xai import XaiSupportAgentProvider
from tests.fakes.transport_failures import (
    AFTER_SENDING,
    BEFORE_SENDING,
    cut_body,
    mocked_http,
    read_timeout,
)
from tests.providers.conftest import API_KEY

Failure = Callable[[], BaseException]
ALL_FAILURES: dict[str, Failure] = {**BEFORE_SENDING, **AFTER_SENDING}
MID_STREAM: dict[str, Failure] = {
    "timeout mid-stream": read_timeout,
    "reset mid-stream": lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
}

OPENAI = "https://models.test/v1/"
CHAT_URL = OPENAI + "chat/completions"
XAI = "https://xai.test/"
INGRAM = "https://ingram.test/"
RUNS = re.compile(re.escape(INGRAM) + r"v1/smiths/smt_1/runs$")

REQUEST = ModelRequest(
    messages=(ChatMessage(role="user", content="where is my parcel"),),
    stream=True,
    thread_key="thr_1",
    smith_key="web:u1",
)


async def no_sleep(_: float) -> None:
    return None


def resilient(inner: ModelProvider) -> ResilientProvider:
    return ResilientProvider(inner, timeout_seconds=10, max_retries=2, sleep=no_sleep)


def sse(*chunks: Any, done: bool = True) -> str:
    frames = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join(frames) + ("data: [DONE]\n\n" if done else "")


def openai_delta(text: str = "", **extra: Any) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": text} if text else {"role": "assistant"}
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, **extra}]}


WHOLE_ANSWER = {
    "id": "c1",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "It left today."},
                 "finish_reason": "stop"}],
}
STREAMED_ANSWER = sse(openai_delta("It left "), openai_delta("today."),
                      openai_delta(finish_reason="stop"))


def requests_to(mocked: aioresponses, method: str, url: str | re.Pattern[str]) -> int:
    return sum(
        len(found)
        for (verb, called), found in mocked.requests.items()
        if verb == method and (url.fullmatch(str(called)) if isinstance(url, re.Pattern) else str(called) == url)
    )


class Heard:
    """What reached the customer, delta by delta."""

    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def __call__(self, text: str) -> None:
        self.deltas.append(text)


@pytest.fixture
async def openai_stream() -> AsyncIterator[ResilientProvider]:
    provider = resilient(OpenAIProvider(api_key=API_KEY, base_url=OPENAI, model="m"))
    try:
        yield provider
    finally:
        await provider.aclose()


@pytest.fixture
async def openai_whole() -> AsyncIterator[ResilientProvider]:
    provider = resilient(OpenAIProvider(api_key=API_KEY, base_url=OPENAI, model="m", stream=False))
    try:
        yield provider
    finally:
        await provider.aclose()


# -- openai: nothing said yet → retried -----------------------------------------------------------


@pytest.mark.parametrize("failure", ALL_FAILURES.values(), ids=ALL_FAILURES.keys())
async def test_a_call_that_failed_before_any_answer_is_retried(
    openai_whole: ResilientProvider, failure: Failure
) -> None:
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, exception=failure())
        mocked.post(CHAT_URL, payload=WHOLE_ANSWER)
        response = await openai_whole.complete(REQUEST)
    assert response.text == "It left today."
    assert requests_to(mocked, "POST", CHAT_URL) == 2


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
async def test_a_whole_answer_cut_mid_body_is_retried(
    openai_whole: ResilientProvider, failure: Failure
) -> None:
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, callback=cut_body(json.dumps(WHOLE_ANSWER)[:40], failure()))
        mocked.post(CHAT_URL, payload=WHOLE_ANSWER)
        response = await openai_whole.complete(REQUEST)
    assert response.text == "It left today."
    assert requests_to(mocked, "POST", CHAT_URL) == 2


@pytest.mark.parametrize("failure", ALL_FAILURES.values(), ids=ALL_FAILURES.keys())
async def test_a_stream_that_failed_before_it_began_is_retried(
    openai_stream: ResilientProvider, failure: Failure
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, exception=failure())
        mocked.post(CHAT_URL, body=STREAMED_ANSWER, content_type="text/event-stream")
        response = await openai_stream.complete(REQUEST, heard)
    assert response.text == "It left today."
    assert heard.deltas == ["It left ", "today."]
    assert requests_to(mocked, "POST", CHAT_URL) == 2


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
async def test_a_stream_cut_before_any_words_is_retried(
    openai_stream: ResilientProvider, failure: Failure
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        # The role chunk came through, then the stream stalled or was cut: nothing was said.
        mocked.post(CHAT_URL, callback=cut_body(sse(openai_delta(), done=False), failure(),
                                                content_type="text/event-stream"))
        mocked.post(CHAT_URL, body=STREAMED_ANSWER, content_type="text/event-stream")
        response = await openai_stream.complete(REQUEST, heard)
    assert response.text == "It left today."
    assert heard.deltas == ["It left ", "today."]
    assert requests_to(mocked, "POST", CHAT_URL) == 2


# -- openai: words already said → a clear error, never said twice -------------------------------


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
async def test_a_stream_cut_after_words_reached_the_customer_is_not_retried(
    openai_stream: ResilientProvider, failure: Failure
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, callback=cut_body(sse(openai_delta("It left "), done=False),
                                                failure(), content_type="text/event-stream"))
        mocked.post(CHAT_URL, body=STREAMED_ANSWER, content_type="text/event-stream")
        with pytest.raises(ProviderError) as caught:
            await openai_stream.complete(REQUEST, heard)
    assert heard.deltas == ["It left "]
    assert requests_to(mocked, "POST", CHAT_URL) == 1
    message = str(caught.value)
    assert message.startswith("openai: ") and ("timed out" in message or "cut mid-response" in message)
    assert API_KEY not in message


# -- clear errors, and never the key --------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (BEFORE_SENDING["refused"], "openai: cannot connect (ClientConnectorError: "),
        (BEFORE_SENDING["dns failure"], "openai: cannot connect (ClientConnectorDNSError: "),
        (AFTER_SENDING["server disconnected"], "openai: connection cut mid-response (ServerDisconnectedError: "),
        (AFTER_SENDING["read timeout"], "openai: timed out (SocketTimeoutError: "),
    ],
    ids=["refused", "dns failure", "server disconnected", "read timeout"],
)
async def test_a_failure_that_outlasts_the_retries_is_a_clear_error(
    openai_whole: ResilientProvider, failure: Failure, says: str
) -> None:
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, exception=failure(), repeat=True)
        with pytest.raises(ProviderError) as caught:
            await openai_whole.complete(REQUEST)
    assert requests_to(mocked, "POST", CHAT_URL) == 3  # the first try and max_retries=2 more
    assert str(caught.value).startswith(says)
    assert caught.value.retryable  # so the fallback chain takes over
    assert API_KEY not in str(caught.value)


async def test_the_key_is_scrubbed_from_a_transport_error_that_echoes_it(
    openai_whole: ResilientProvider,
) -> None:
    # A proxy or a broken server can put the Authorization header into its reset message.
    echo = aiohttp.ClientOSError(104, f"reset while sending 'Authorization: Bearer {API_KEY}'")
    with mocked_http() as mocked:
        mocked.post(CHAT_URL, exception=echo, repeat=True)
        with pytest.raises(ProviderError) as caught:
            await openai_whole.complete(REQUEST)
    assert API_KEY not in str(caught.value) and "Bearer ***" in str(caught.value)


# -- xai-support-agent ---------------------------------------------------------------------------


@pytest.fixture
async def xai() -> AsyncIterator[ResilientProvider]:
    provider = resilient(XaiSupportAgentProvider(api_key=API_KEY, support_agent_id="agent-1",
                                                 base_url=XAI))
    try:
        yield provider
    finally:
        await provider.aclose()


XAI_STREAM = XAI + "v1/support-agent/chat-stream"
XAI_ANSWER = sse({"delta": "It left "}, {"delta": "today."}, {"finish_reason": "stop"})


async def test_xai_retries_a_stream_reset_before_it_said_anything(xai: ResilientProvider) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(XAI_STREAM, exception=AFTER_SENDING["connection reset"]())
        mocked.post(XAI_STREAM, body=XAI_ANSWER, content_type="text/event-stream")
        response = await xai.complete(REQUEST, heard)
    assert response.text == "It left today."
    assert heard.deltas == ["It left ", "today."]
    assert requests_to(mocked, "POST", XAI_STREAM) == 2


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
async def test_xai_does_not_retry_a_stream_cut_after_it_said_something(
    xai: ResilientProvider, failure: Failure
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(XAI_STREAM, callback=cut_body(sse({"delta": "It left "}, done=False), failure(),
                                                  content_type="text/event-stream"))
        mocked.post(XAI_STREAM, body=XAI_ANSWER, content_type="text/event-stream")
        with pytest.raises(ProviderError) as caught:
            await xai.complete(REQUEST, heard)
    assert heard.deltas == ["It left "]
    assert requests_to(mocked, "POST", XAI_STREAM) == 1
    assert str(caught.value).startswith("xai-support-agent: ") and API_KEY not in str(caught.value)


# -- ingram ---------------------------------------------------------------------------------------


@pytest.fixture
async def ingram() -> AsyncIterator[ResilientProvider]:
    provider = resilient(IngramProvider(api_key=API_KEY, base_url=INGRAM, agent_id="agt"))
    try:
        yield provider
    finally:
        await provider.aclose()


def ingram_frame(event: str, **data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps({'v': 1, 'run_id': 'run_1', **data})}\n\n"


INGRAM_ANSWER = (
    ingram_frame("run.started")
    + ingram_frame("message.delta", delta="It left ")
    + ingram_frame("message.delta", delta="today.")
    + ingram_frame("run.completed", stop_reason="end_turn")
)


@pytest.mark.parametrize("failure", ALL_FAILURES.values(), ids=ALL_FAILURES.keys())
async def test_ingram_retries_the_smith_upsert_after_any_failure(
    ingram: ResilientProvider, failure: Failure
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(INGRAM + "v1/smiths", exception=failure())
        mocked.post(INGRAM + "v1/smiths", payload={"id": "smt_1"})
        mocked.post(RUNS, body=INGRAM_ANSWER, content_type="text/event-stream")
        response = await ingram.complete(REQUEST, heard)
    assert response.text == "It left today."
    assert requests_to(mocked, "POST", INGRAM + "v1/smiths") == 2
    assert requests_to(mocked, "POST", RUNS) == 1


RUN_1 = INGRAM + "v1/smiths/smt_1/runs/run_1"
RUN_1_DONE = {"id": "run_1", "status": "completed", "stop_reason": "end_turn",
              "output": {"content": "It left today."}}


@pytest.mark.parametrize("said", [False, True], ids=["before any words", "after some words"])
@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
async def test_ingram_follows_a_run_whose_stream_broke_instead_of_starting_another(
    ingram: ResilientProvider, failure: Failure, said: bool
) -> None:
    heard = Heard()
    head = ingram_frame("run.started") + (ingram_frame("message.delta", delta="It left ") if said else "")
    with mocked_http() as mocked:
        mocked.post(INGRAM + "v1/smiths", payload={"id": "smt_1"})
        mocked.post(RUNS, callback=cut_body(head, failure(), content_type="text/event-stream"))
        # A second run would put the customer's message into the thread twice.
        mocked.post(RUNS, body=INGRAM_ANSWER, content_type="text/event-stream")
        mocked.get(RUN_1, payload=RUN_1_DONE)
        response = await ingram.complete(REQUEST, heard)
    assert requests_to(mocked, "POST", RUNS) == 1
    assert requests_to(mocked, "GET", RUN_1) == 1
    # The record has the whole answer; the stream showed its beginning at most, once.
    assert response.text == "It left today."
    assert heard.deltas == (["It left "] if said else [])


async def test_ingram_retries_a_run_whose_stream_broke_before_naming_it(
    ingram: ResilientProvider,
) -> None:
    heard = Heard()
    with mocked_http() as mocked:
        mocked.post(INGRAM + "v1/smiths", payload={"id": "smt_1"})
        mocked.post(RUNS, callback=cut_body(": keep-alive\n\n", read_timeout(),
                                            content_type="text/event-stream"))
        mocked.post(RUNS, body=INGRAM_ANSWER, content_type="text/event-stream")
        response = await ingram.complete(REQUEST, heard)
    # No run id came back: there is nothing to follow, and nothing was said.
    assert response.text == "It left today."
    assert heard.deltas == ["It left ", "today."]
    assert requests_to(mocked, "POST", RUNS) == 2


async def test_ingram_gives_up_cleanly_when_the_run_cannot_be_followed_after_words(
    ingram: ResilientProvider,
) -> None:
    heard = Heard()
    head = ingram_frame("run.started") + ingram_frame("message.delta", delta="It left ")
    with mocked_http() as mocked:
        mocked.post(INGRAM + "v1/smiths", payload={"id": "smt_1"})
        mocked.post(RUNS, callback=cut_body(head, read_timeout(), content_type="text/event-stream"))
        mocked.post(RUNS, body=INGRAM_ANSWER, content_type="text/event-stream")
        mocked.get(RUN_1, exception=BEFORE_SENDING["refused"](), repeat=True)
        with pytest.raises(ProviderError) as caught:
            await ingram.complete(REQUEST, heard)
    assert heard.deltas == ["It left "]
    assert requests_to(mocked, "POST", RUNS) == 1
    assert str(caught.value).startswith("ingram: cannot connect") and API_KEY not in str(caught.value)
