"""What the ``openai`` provider sends and how it copes with what real OpenAI-compatible servers
do with it, against the scripted model server over real HTTP: ``tool_choice`` with tools,
a server that cannot stream tool calls (llama-cpp-python), the output cap and
``finish_reason: length``, usage a server does not report."""

from __future__ import annotations

import logging

import pytest

from bot.domain import Usage
from bot.providers.base import (
    TRUNCATION_NOTE,
    ChatMessage,
    ModelRequest,
    ProviderError,
    cut_at_sentence,
    estimate_tokens,
)
from bot.providers.openai import OpenAIProvider
from bot.providers.resilience import ResilientProvider
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall
from tests.providers.test_openai import Deltas, ask, provider_for

CUT_OFF = (
    "To reset your password, open the sign-in page and choose Forgot password. "
    "We send a link to your email address. Then open the link and ente"
)


def plain(text: str = "hi", *, stream: bool) -> ModelRequest:
    """A request that offers no tools."""
    return ModelRequest(
        messages=(ChatMessage("system", "Be helpful."), ChatMessage("user", text)), stream=stream
    )


# -- tool_choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_choice_auto_goes_with_tools_and_only_with_them(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    model_server.enqueue(ScriptedReply.say("one"), ScriptedReply.say("two"))
    provider = provider_for(model_server)
    try:
        await provider.complete(ask(stream=stream))
        await provider.complete(plain(stream=stream))
    finally:
        await provider.aclose()
    with_tools, without = (r.json for r in model_server.chat_requests)
    assert with_tools["tool_choice"] == "auto" and with_tools["tools"]
    assert "tool_choice" not in without and "tools" not in without


async def test_tool_choice_is_configurable(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.say("fine"))
    provider = provider_for(model_server, tool_choice="required")
    try:
        await provider.complete(ask(stream=False))
    finally:
        await provider.aclose()
    assert model_server.chat_requests[0].json["tool_choice"] == "required"


# -- servers that cannot stream tool calls -------------------------------------------------------


@pytest.mark.parametrize("shape", ["empty", "cut", "error"])
async def test_a_server_that_cannot_stream_tool_calls_is_detected_once(
    shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with ScriptedModelServer(streamed_tools=shape) as server:  # type: ignore[arg-type]
        server.enqueue(
            ScriptedReply.calls(ScriptedToolCall("ESCALATE", {"reason": "asked"}, id="c1")),
            ScriptedReply.say("Anything else?"),
            ScriptedReply.say("Plain streamed answer."),
        )
        provider = provider_for(server)
        deltas = Deltas()
        try:
            with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
                first = await provider.complete(ask(stream=True), deltas)
                second = await provider.complete(ask("and now?", stream=True), deltas)
                third = await provider.complete(plain(stream=True), deltas)
        finally:
            await provider.aclose()
        sent = [(r.json["stream"], bool(r.json.get("tools"))) for r in server.chat_requests]

    assert [c.name for c in first.tool_calls] == ["ESCALATE"]
    assert first.tool_calls[0].arguments == {"reason": "asked"}
    assert second.text == "Anything else?"
    # one refused streamed try, its repeat whole, then whole straight away; no tools: streamed
    assert sent == [(True, True), (False, True), (False, True), (True, False)]
    assert server.refused_streams == 1
    assert third.text == "Plain streamed answer." and "".join(deltas.parts) == third.text
    warnings = [r for r in caplog.records if "cannot stream tool calls" in r.getMessage()]
    assert len(warnings) == 1


async def test_stream_tools_false_never_streams_a_call_with_tools() -> None:
    async with ScriptedModelServer(streamed_tools="error") as server:
        server.enqueue(ScriptedReply.say("Whole answer."))
        provider = provider_for(server, stream_tools=False)
        deltas = Deltas()
        try:
            response = await provider.complete(ask(stream=True), deltas)
        finally:
            await provider.aclose()
    assert response.text == "Whole answer."
    assert server.refused_streams == 0
    assert [r.json["stream"] for r in server.chat_requests] == [False]


@pytest.mark.parametrize(
    "reply",
    [
        ScriptedReply.error(500, message="Automatic streaming tool choice is not supported"),
        ScriptedReply.error(400, message="bad request"),
        ScriptedReply.say("", stream=True, cut_after=0, cut_mode="eof"),
    ],
    ids=["llama-error-text", "400", "empty-200"],
)
async def test_deterministic_failures_are_attempted_once(
    model_server: ScriptedModelServer, reply: ScriptedReply
) -> None:
    # Without tools no whole retry applies: the failure must reach the retry layer as final.
    model_server.rule = lambda request: reply
    provider = ResilientProvider(
        provider_for(model_server), timeout_seconds=5, max_retries=3, backoff_initial=0.01
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(plain(stream=True))
    finally:
        await provider.aclose()
    assert caught.value.retryable is False
    assert len(model_server.chat_requests) == 1


async def test_an_empty_whole_answer_is_not_retried(model_server: ScriptedModelServer) -> None:
    # A 200 with no body at all, asked for whole.
    model_server.rule = lambda request: ScriptedReply(stream=True, cut_after=0, cut_mode="eof")
    provider = ResilientProvider(
        provider_for(model_server), timeout_seconds=5, max_retries=3, backoff_initial=0.01
    )
    try:
        with pytest.raises(ProviderError, match="empty body"):
            await provider.complete(plain(stream=False))
    finally:
        await provider.aclose()
    assert len(model_server.chat_requests) == 1


async def test_a_cut_before_the_first_frame_without_tools_is_still_retried(
    model_server: ScriptedModelServer,
) -> None:
    # Without tools a dropped connection is the network's doing, not a refusal.
    model_server.enqueue(
        ScriptedReply.say("lost", cut_after=0, cut_mode="abort"), ScriptedReply.say("Here.")
    )
    provider = ResilientProvider(
        provider_for(model_server), timeout_seconds=5, max_retries=3, backoff_initial=0.01
    )
    try:
        response = await provider.complete(plain(stream=True))
    finally:
        await provider.aclose()
    assert response.text == "Here."
    assert len(model_server.chat_requests) == 2


# -- the output cap and finish_reason: length ----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_on_every_call(model_server: ScriptedModelServer, stream: bool) -> None:
    model_server.enqueue(ScriptedReply.say("one"), ScriptedReply.say("two"))
    provider = provider_for(model_server, max_output_tokens=300)
    try:
        await provider.complete(ask(stream=stream))
        await provider.complete(plain(stream=stream))
    finally:
        await provider.aclose()
    assert [r.json["max_tokens"] for r in model_server.chat_requests] == [300, 300]
    assert all("max_completion_tokens" not in r.json for r in model_server.chat_requests)


def test_openai_itself_gets_max_completion_tokens() -> None:
    provider = OpenAIProvider(api_key="k", base_url="https://api.openai.com/v1")
    body = provider.body(plain(stream=False), stream=False)
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_cut_by_the_cap_ends_at_a_sentence_with_a_note(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    model_server.enqueue(ScriptedReply.say(CUT_OFF, finish_reason="length"))
    provider = provider_for(model_server)
    deltas = Deltas()
    try:
        response = await provider.complete(plain(stream=stream), deltas)
    finally:
        await provider.aclose()
    kept = (
        "To reset your password, open the sign-in page and choose Forgot password. "
        "We send a link to your email address."
    )
    assert response.text == f"{kept}\n\n{TRUNCATION_NOTE}"
    assert response.finish_reason == "length"
    assert response.usage.truncated is True
    if stream:
        # The cut-off words were on screen already; the note follows them there.
        assert "".join(deltas.parts) == f"{CUT_OFF}\n\n{TRUNCATION_NOTE}"


async def test_a_cut_answer_with_nothing_sensible_left_falls_back(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(ScriptedReply.say("Sure, the steps are", finish_reason="length"))
    provider = provider_for(model_server)
    try:
        with pytest.raises(ProviderError, match="output cap") as caught:
            await provider.complete(plain(stream=False))
    finally:
        await provider.aclose()
    assert caught.value.retryable is False


def test_cut_at_sentence() -> None:
    assert cut_at_sentence(CUT_OFF) == CUT_OFF[: CUT_OFF.index("address.") + len("address.")]
    # a finished list line is kept; "2." opening the next one is no sentence end
    listed = "Here are the steps:\n1. Open the sign-in page and choose Forgot password\n2. Ent"
    assert cut_at_sentence(listed) == listed[: listed.rindex("\n")]
    assert cut_at_sentence("Version 2.5 fixes the bug you saw in the app earlier tod") is None
    assert cut_at_sentence("Yes. But") is None


# -- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_from_the_server_is_taken_as_is(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    model_server.enqueue(ScriptedReply.say("Hello.", usage=(40, 3)))
    provider = provider_for(model_server)
    try:
        response = await provider.complete(plain(stream=stream))
    finally:
        await provider.aclose()
    assert response.usage == Usage(40, 3)


@pytest.mark.parametrize("stream", [False, True])
async def test_missing_usage_is_estimated_and_marked(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    answer = "You can reset it from the sign-in page."
    model_server.enqueue(ScriptedReply.say(answer, report_usage=False))
    provider = provider_for(model_server)
    try:
        response = await provider.complete(ask("How do I reset my password?", stream=stream))
    finally:
        await provider.aclose()
    usage = response.usage
    assert usage.estimated is True
    assert usage.output_tokens == estimate_tokens(answer)
    # two messages, their text and the tool definitions
    assert usage.input_tokens > estimate_tokens("Be helpful.How do I reset my password?") + 8
    assert usage.to_json()["estimated"] is True


def test_usage_flags_survive_sums_and_storage() -> None:
    total = Usage(10, 2) + Usage(5, 1, estimated=True) + Usage(0, 9, truncated=True)
    assert total == Usage(15, 12, estimated=True, truncated=True)
    assert Usage.from_json(total.to_json()) == total
    assert Usage(1, 2).to_json() == {"input_tokens": 1, "output_tokens": 2}
