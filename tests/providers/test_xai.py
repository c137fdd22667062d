"""The xAI Support Agents provider against a strict scripted server, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.providers.base import (
    ChatMessage,
    ContentPart,
    ModelRequest,
    ProviderError,
    ToolCall,
    estimate_tokens,
)
from bot.providers.xai import XaiSupportAgentProvider
from tests.fakes.model_server import ScriptedToolCall
from tests.fakes.xai_server import XaiReply, XaiSupportAgentServer
from tests.providers.conftest import API_KEY

RAG = ({"text": "Orders ship within 2 days.", "score": 0.91, "collection_id": "col_1"},)


@pytest.fixture
async def xai() -> AsyncIterator[XaiSupportAgentServer]:
    async with XaiSupportAgentServer() as server:
        yield server


def provider_for(server: XaiSupportAgentServer) -> XaiSupportAgentProvider:
    return XaiSupportAgentProvider(
        api_key=API_KEY,
        support_agent_id="support_agent_123",
        base_url=server.url,
        environment="ENVIRONMENT_STAGING",
        timeout_seconds=5,
    )


def ask(*, stream: bool) -> ModelRequest:
    return ModelRequest(
        messages=(ChatMessage("system", "Be kind."), ChatMessage("user", "Where is my order?")),
        stream=stream,
        thread_key="intercom:conv_42",
    )


async def test_history_is_mapped_to_roles_and_text_parts(xai: XaiSupportAgentServer) -> None:
    xai.enqueue(XaiReply(text="Someone will follow up."))
    call = ToolCall("call_1", "USER_INFO_LOOKUP", '{"user_id": "u1"}', {"user_id": "u1"})
    request = ModelRequest(
        messages=(
            ChatMessage("system", "Be kind."),
            ChatMessage(
                "user",
                "Here is a screenshot",
                parts=(
                    ContentPart("image", "s.png", "image/png", "data:image/png;base64,AAAA"),
                    ContentPart(
                        "file", "bill.pdf", "application/pdf", "data:application/pdf;base64,JVBE"
                    ),
                ),
            ),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", '{"name": "Ada"}', tool_call_id="call_1", name="USER_INFO_LOOKUP"),
        ),
        thread_key="intercom:conv_42",
    )
    provider = provider_for(xai)
    try:
        response = await provider.complete(request)
    finally:
        await provider.aclose()
    assert response.text == "Someone will follow up."
    (sent,) = xai.requests
    assert sent.path == "/v1/support-agent/chat"
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    assert sent.json["support_agent_id"] == "support_agent_123"
    assert sent.json["deployment_id"] == "LATEST"
    assert sent.json["environment"] == "ENVIRONMENT_STAGING"
    assert sent.json["conversation_id"] == "intercom:conv_42"
    assert sent.json["messages"] == [
        {"role": "ROLE_SYSTEM", "content": [{"text": "Be kind."}]},
        {
            "role": "ROLE_USER",
            "content": [
                {"text": "Here is a screenshot"},
                {"image_url": {"image_url": "data:image/png;base64,AAAA"}},
                {"text": "[attached file: bill.pdf (application/pdf)]"},
            ],
        },
        {
            "role": "ROLE_ASSISTANT",
            "content": [{"text": ""}],
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "USER_INFO_LOOKUP", "arguments": '{"user_id": "u1"}'},
                }
            ],
        },
        {"role": "ROLE_TOOL", "content": [{"text": '{"name": "Ada"}'}], "tool_call_id": "call_1"},
    ]


async def test_answer_keeps_rag_results_and_usage(xai: XaiSupportAgentServer) -> None:
    xai.enqueue(XaiReply(text="It ships within 2 days.", rag_results=RAG, usage=(40, 12)))
    provider = provider_for(xai)
    try:
        response = await provider.complete(ask(stream=False))
    finally:
        await provider.aclose()
    assert response.text == "It ships within 2 days."
    assert response.rag_results == RAG
    assert (response.usage.input_tokens, response.usage.output_tokens) == (40, 12)
    assert response.tool_calls == ()


@pytest.mark.parametrize(
    "reply",
    [
        XaiReply(tool_calls=(ScriptedToolCall("ESCALATE", {"reason": "angry"}, id="t1"),)),
        XaiReply(
            role="ROLE_TOOL",
            tool_calls=(ScriptedToolCall("ESCALATE", {"reason": "angry"}, id="t1"),),
        ),
        XaiReply(
            legacy_function=True,
            tool_calls=(ScriptedToolCall("ESCALATE", {"reason": "angry"}, id="t1"),),
        ),
    ],
    ids=["assistant-tool_calls", "role-tool", "legacy-function"],
)
async def test_tool_calls_in_every_documented_shape(
    xai: XaiSupportAgentServer, reply: XaiReply
) -> None:
    xai.enqueue(reply)
    provider = provider_for(xai)
    try:
        response = await provider.complete(ask(stream=False))
    finally:
        await provider.aclose()
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("t1", "ESCALATE", {"reason": "angry"})
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream_format", ["sse", "ndjson", "sse-snapshot", "grpc-gateway"])
async def test_streams_are_parsed_defensively(
    xai: XaiSupportAgentServer, stream_format: str
) -> None:
    text = "Your order left our warehouse yesterday."
    xai.enqueue(
        XaiReply(
            text=text,
            tool_calls=(ScriptedToolCall("CLOSE", {"resolution_summary": "shipped"}, id="c9"),),
            rag_results=RAG,
            stream_format=stream_format,  # type: ignore[arg-type]
            chunk_size=6,
        )
    )
    deltas: list[str] = []

    async def on_delta(piece: str) -> None:
        deltas.append(piece)

    provider = provider_for(xai)
    try:
        response = await provider.complete(ask(stream=True), on_delta)
    finally:
        await provider.aclose()
    assert xai.requests[0].path == "/v1/support-agent/chat-stream"
    assert response.text == text
    assert "".join(deltas) == text and len(deltas) > 1
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "c9",
        "CLOSE",
        {"resolution_summary": "shipped"},
    )
    assert response.rag_results == RAG
    assert response.usage.input_tokens == 30


async def test_errors_and_cut_streams(xai: XaiSupportAgentServer) -> None:
    xai.enqueue(
        XaiReply.error(429, retry_after="3"),
        XaiReply.error(400),
        XaiReply(text="a long answer that is cut", cut_after=2),
    )
    provider = provider_for(xai)
    try:
        with pytest.raises(ProviderError) as rate_limited:
            await provider.complete(ask(stream=True))
        with pytest.raises(ProviderError) as rejected:
            await provider.complete(ask(stream=False))
        with pytest.raises(ProviderError) as cut:
            await provider.complete(ask(stream=True))
    finally:
        await provider.aclose()
    assert rate_limited.value.retryable and rate_limited.value.retry_after == 3.0
    assert not rejected.value.retryable
    assert cut.value.retryable
    for error in (rate_limited, rejected, cut):
        assert API_KEY not in str(error.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_the_api_leaves_at_zero_is_estimated(
    xai: XaiSupportAgentServer, stream: bool
) -> None:
    xai.enqueue(XaiReply(text="Your order ships tomorrow.", usage=(0, 0)))
    provider = provider_for(xai)
    try:
        response = await provider.complete(ask(stream=stream))
    finally:
        await provider.aclose()
    assert response.usage.estimated is True
    assert response.usage.output_tokens == estimate_tokens("Your order ships tomorrow.")
    # the fake is strict: the request carries no field the API does not define (no cap)
    assert xai.requests and all(r.json.get("max_tokens") is None for r in xai.requests)
