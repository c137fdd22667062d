"""The OpenAI-compatible provider against the scripted model server, over real HTTP."""

from __future__ import annotations

import json

import pytest

from bot.providers.base import (
    ChatMessage,
    ContentPart,
    ModelRequest,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from bot.providers.openai import OpenAIProvider, ToolCallAccumulator
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall
from tests.providers.conftest import API_KEY

TOOLS = (
    ToolSpec(
        name="ESCALATE",
        description="Hand the conversation to a human.",
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string"}, "priority": {"type": "string"}},
            "required": ["reason"],
        },
    ),
)


def provider_for(server: ScriptedModelServer, **options: object) -> OpenAIProvider:
    return OpenAIProvider(
        api_key=API_KEY,
        base_url=server.url,
        model="scripted",
        timeout_seconds=5,
        **options,  # type: ignore[arg-type]
    )


def ask(text: str = "I want a human", *, stream: bool) -> ModelRequest:
    return ModelRequest(
        messages=(ChatMessage("system", "Be helpful."), ChatMessage("user", text)),
        tools=TOOLS,
        stream=stream,
    )


class Deltas:
    def __init__(self) -> None:
        self.parts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.parts.append(text)


@pytest.mark.parametrize("stream", [False, True])
async def test_text_answer_with_usage_and_deltas(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    model_server.enqueue(ScriptedReply.say("Hello there, how can I help?", usage=(21, 8)))
    provider = provider_for(model_server)
    deltas = Deltas()
    try:
        response = await provider.complete(ask("hi", stream=stream), deltas)
    finally:
        await provider.aclose()
    assert response.text == "Hello there, how can I help?"
    assert response.tool_calls == ()
    assert response.usage.input_tokens == 21 and response.usage.output_tokens == 8
    assert response.model == "scripted-model"
    assert response.finish_reason == "stop"
    if stream:
        assert len(deltas.parts) > 1 and "".join(deltas.parts) == response.text
    else:
        assert deltas.parts == []
    sent = model_server.chat_requests[0]
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    assert sent.json["model"] == "scripted"
    assert sent.json["stream"] is stream
    assert sent.json["tools"][0] == {
        "type": "function",
        "function": {
            "name": "ESCALATE",
            "description": "Hand the conversation to a human.",
            "parameters": TOOLS[0].parameters,
        },
    }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("repeat_ids", [False, True])
async def test_tool_calls(
    model_server: ScriptedModelServer, stream: bool, repeat_ids: bool
) -> None:
    model_server.enqueue(
        ScriptedReply.calls(
            ScriptedToolCall(
                "ESCALATE",
                {"reason": "customer asked for a person", "priority": "high"},
                id="call_a",
            ),
            ScriptedToolCall("CLOSE", {"resolution_summary": "handed over"}, id="call_b"),
            text="Let me get someone.",
            repeat_ids=repeat_ids,
            chunk_size=4,
        )
    )
    provider = provider_for(model_server)
    try:
        response = await provider.complete(ask(stream=stream))
    finally:
        await provider.aclose()
    assert response.text == "Let me get someone."
    assert response.finish_reason == "tool_calls"
    assert [c.id for c in response.tool_calls] == ["call_a", "call_b"]
    assert [c.name for c in response.tool_calls] == ["ESCALATE", "CLOSE"]
    assert response.tool_calls[0].arguments == {
        "reason": "customer asked for a person",
        "priority": "high",
    }
    assert response.tool_calls[1].arguments == {"resolution_summary": "handed over"}
    assert all(c.error is None for c in response.tool_calls)


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_arguments_become_a_tool_error(
    model_server: ScriptedModelServer, stream: bool
) -> None:
    model_server.enqueue(
        ScriptedReply.calls(ScriptedToolCall("ESCALATE", '{"reason": "oops', id="call_x"))
    )
    provider = provider_for(model_server)
    try:
        response = await provider.complete(ask(stream=stream))
    finally:
        await provider.aclose()
    (call,) = response.tool_calls
    assert call.name == "ESCALATE" and call.id == "call_x"
    assert call.arguments is None
    assert call.raw_arguments == '{"reason": "oops'
    assert call.error is not None and "not valid JSON" in call.error


async def test_assistant_tool_call_messages_go_out_with_empty_content(
    model_server: ScriptedModelServer,
) -> None:
    model_server.enqueue(ScriptedReply.say("Someone will be with you shortly."))
    good = ToolCall("call_1", "ESCALATE", '{"reason": "r"}', {"reason": "r"})
    bad = ToolCall("call_2", "CLOSE", "{nope", None, "tool arguments are not valid JSON")
    request = ModelRequest(
        messages=(
            ChatMessage("user", "human please"),
            ChatMessage("assistant", "", tool_calls=(good, bad)),
            ChatMessage("tool", '{"ok": true}', tool_call_id="call_1", name="ESCALATE"),
            ChatMessage("tool", "error: invalid arguments", tool_call_id="call_2", name="CLOSE"),
        ),
        tools=TOOLS,
    )
    provider = provider_for(model_server)
    try:
        response = await provider.complete(request)
    finally:
        await provider.aclose()
    assert response.text == "Someone will be with you shortly."
    messages = model_server.chat_requests[0].messages
    assistant = messages[1]
    assert assistant["content"] == ""
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "ESCALATE", "arguments": '{"reason": "r"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "CLOSE", "arguments": "{}"}},
    ]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'}
    assert messages[3]["role"] == "tool" and messages[3]["tool_call_id"] == "call_2"


async def test_images_and_files_become_content_parts(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.say("I see the screenshot."))
    request = ModelRequest(
        messages=(
            ChatMessage(
                "user",
                "see attached",
                parts=(
                    ContentPart("image", "shot.png", "image/png", "data:image/png;base64,iVBO"),
                    ContentPart(
                        "file", "invoice.pdf", "application/pdf", "data:application/pdf;base64,JVBE"
                    ),
                ),
            ),
        )
    )
    provider = provider_for(model_server)
    try:
        await provider.complete(request)
    finally:
        await provider.aclose()
    content = model_server.chat_requests[0].messages[0]["content"]
    assert content == [
        {"type": "text", "text": "see attached"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {
            "type": "file",
            "file": {"filename": "invoice.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
    ]


@pytest.mark.parametrize(
    "status,retryable", [(429, True), (500, True), (503, True), (400, False), (401, False)]
)
async def test_http_errors_map_to_provider_errors(
    model_server: ScriptedModelServer, status: int, retryable: bool
) -> None:
    model_server.enqueue(ScriptedReply.error(status, retry_after="2"))
    provider = provider_for(model_server)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == 2.0
    assert str(status) in str(caught.value)
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    "mode,says", [("abort", "connection cut mid-response"), ("eof", "ended before its last chunk")]
)
async def test_cut_stream_is_a_retryable_error(
    model_server: ScriptedModelServer, mode: str, says: str
) -> None:
    model_server.enqueue(
        ScriptedReply.say("This answer will never finish", cut_after=3, cut_mode=mode)
    )  # type: ignore[arg-type]
    provider = provider_for(model_server)
    deltas = Deltas()
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ask(stream=True), deltas)
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert says in str(caught.value)
    assert deltas.parts  # some text was delivered before the cut


async def test_connection_refused_is_retryable() -> None:
    server = ScriptedModelServer()
    await server.start()
    url = server.url
    await server.stop()
    provider = OpenAIProvider(api_key=API_KEY, base_url=url, timeout_seconds=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ask(stream=False))
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert "cannot connect" in str(caught.value)
    assert API_KEY not in str(caught.value)


async def test_a_stalled_stream_times_out(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(ScriptedReply.say("slow answer", chunk_size=4, delay_between_chunks=5))
    provider = OpenAIProvider(api_key=API_KEY, base_url=model_server.url, timeout_seconds=0.3)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert "timed out" in str(caught.value)


async def test_a_line_longer_than_aiohttps_read_buffer(model_server: ScriptedModelServer) -> None:
    # One frame of ~300 KiB (aiohttp's readline gives up at 128 KiB) in 4 KiB writes.
    reason = "ü" * 150_000
    model_server.enqueue(
        ScriptedReply.calls(
            ScriptedToolCall("ESCALATE", {"reason": reason}, id="call_big"),
            chunk_size=400_000,
            escape_non_ascii=False,
            write_size=4096,
        )
    )
    provider = provider_for(model_server)
    try:
        response = await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    (call,) = response.tool_calls
    assert call.id == "call_big" and call.arguments == {"reason": reason}


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
async def test_characters_and_line_ends_cut_between_writes(
    model_server: ScriptedModelServer, line_end: str
) -> None:
    text = "Grüße aus Köln 👋 — ça va? Ελληνικά, 日本語."
    model_server.enqueue(
        ScriptedReply.say(
            text, chunk_size=3, line_end=line_end, escape_non_ascii=False, write_size=1
        )
    )
    provider = provider_for(model_server)
    deltas = Deltas()
    try:
        response = await provider.complete(ask(stream=True), deltas)
    finally:
        await provider.aclose()
    assert response.text == text
    assert "".join(deltas.parts) == text
    assert response.usage.input_tokens == 11  # the frames after the text were read too


def test_accumulator_joins_fragments_by_index() -> None:
    acc = ToolCallAccumulator()
    # OpenAI style: id/name once, then argument pieces.
    acc.add({"index": 0, "id": "a", "function": {"name": "ESC", "arguments": ""}})
    acc.add({"index": 1, "id": "b", "function": {"name": "CLOSE", "arguments": '{"resolution'}})
    acc.add({"index": 0, "function": {"name": "ALATE", "arguments": '{"reason":'}})
    acc.add({"index": 0, "id": "a", "function": {"name": "ESCALATE", "arguments": ' "x"}'}})
    acc.add({"index": 1, "id": "b", "function": {"name": "CLOSE", "arguments": '_summary": "y"}'}})
    calls = acc.result()
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("a", "ESCALATE", {"reason": "x"}),
        ("b", "CLOSE", {"resolution_summary": "y"}),
    ]


def test_accumulator_splits_calls_that_share_index_zero() -> None:
    acc = ToolCallAccumulator()
    acc.add(
        {
            "index": 0,
            "id": "a",
            "function": {"name": "ESCALATE", "arguments": json.dumps({"reason": "r"})},
        }
    )
    acc.add(
        {
            "index": 0,
            "id": "b",
            "function": {"name": "CLOSE", "arguments": json.dumps({"resolution_summary": "s"})},
        }
    )
    assert [c.name for c in acc.result()] == ["ESCALATE", "CLOSE"]


def test_missing_ids_and_double_encoded_arguments() -> None:
    acc = ToolCallAccumulator()
    acc.add(
        {"function": {"name": "ESCALATE", "arguments": json.dumps(json.dumps({"reason": "r"}))}}
    )
    (call,) = acc.result()
    assert call.id.startswith("call_0_")
    assert call.arguments == {"reason": "r"}


async def test_error_frame_inside_a_stream(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(
        ScriptedReply.say(
            "partial",
            stream_error={"message": f"overloaded for key {API_KEY}", "type": "server_error"},
        )
    )
    provider = provider_for(model_server)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert "overloaded" in str(caught.value) and API_KEY not in str(caught.value)


async def test_answer_with_bridges_an_in_process_provider() -> None:
    from bot.providers.base import DeltaSink, ModelResponse
    from tests.fakes.model_server import answer_with

    class Decider:
        """Escalates on "human"; after a tool result, says what the tool returned."""

        name = "decider"

        async def complete(
            self, request: ModelRequest, on_delta: DeltaSink | None = None
        ) -> ModelResponse:
            last = request.messages[-1]
            if last.role == "tool":
                return ModelResponse(text=f"tool said {last.content}", model="decider-1")
            assert [t.name for t in request.tools] == ["ESCALATE"]
            call = ToolCall("call_h", "ESCALATE", '{"reason": "asked"}', {"reason": "asked"})
            return ModelResponse(text="", tool_calls=(call,), model="decider-1")

        async def aclose(self) -> None:
            return None

    async with ScriptedModelServer(rule=answer_with(Decider())) as server:
        provider = provider_for(server)
        try:
            first = await provider.complete(ask(stream=True))
            second = await provider.complete(
                ModelRequest(
                    messages=(
                        *ask(stream=True).messages,
                        ChatMessage("assistant", "", tool_calls=first.tool_calls),
                        ChatMessage("tool", '{"ok": true}', tool_call_id="call_h"),
                    ),
                    tools=TOOLS,
                    stream=True,
                )
            )
        finally:
            await provider.aclose()
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("call_h", "ESCALATE", {"reason": "asked"})
    ]
    assert second.text == 'tool said {"ok": true}'
    assert second.model == "decider-1"


async def test_azure_hosts_get_the_api_key_header() -> None:
    azure = OpenAIProvider(api_key=API_KEY, base_url="https://acme.openai.azure.com/openai/v1")
    plain = OpenAIProvider(api_key=API_KEY, base_url="http://127.0.0.1:9/v1")
    try:
        assert azure._client.headers["api-key"] == API_KEY
        assert "api-key" not in plain._client.headers
        assert plain._client.headers["authorization"] == f"Bearer {API_KEY}"
    finally:
        await azure.aclose()
        await plain.aclose()


async def test_frames_without_blank_lines_between_them(model_server: ScriptedModelServer) -> None:
    model_server.enqueue(
        ScriptedReply.calls(
            ScriptedToolCall("ESCALATE", {"reason": "r"}, id="c1"),
            text="One moment",
            blank_lines=False,
        )
    )
    provider = provider_for(model_server)
    try:
        response = await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    assert response.text == "One moment"
    assert [(c.id, c.arguments) for c in response.tool_calls] == [("c1", {"reason": "r"})]


async def test_servers_that_reject_stream_options() -> None:
    async with ScriptedModelServer(reject_stream_options=True) as server:
        server.enqueue(ScriptedReply.say("first"), ScriptedReply.say("second"))
        provider = provider_for(server)
        try:
            first = await provider.complete(ask(stream=True))
            second = await provider.complete(ask(stream=True))
        finally:
            await provider.aclose()
    assert (first.text, second.text) == ("first", "second")
    sent = [("stream_options" in r.json) for r in server.chat_requests]
    assert sent == [True, False, False]  # refused once, then never sent again
