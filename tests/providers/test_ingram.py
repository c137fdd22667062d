"""The Ingram Cloud provider against a scripted Ingram Cloud, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.providers.base import ChatMessage, ModelRequest, ProviderError, ToolCall, ToolSpec
from bot.providers.ingram import API_VERSION, IngramProvider
from bot.providers.resilience import FallbackProvider, ResilientProvider
from tests.fakes.ingram_server import IngramServer, IngramStep
from tests.fakes.model_server import ScriptedToolCall
from tests.providers.conftest import API_KEY, CannedProvider

TOOLS = (
    ToolSpec(
        "USER_INFO_LOOKUP",
        "Look the customer up.",
        {"type": "object", "properties": {"user_id": {"type": "string"}}},
    ),
    ToolSpec(
        "ESCALATE",
        "Hand over to a human.",
        {"type": "object", "properties": {"reason": {"type": "string"}}},
    ),
)
THREAD = "intercom:conv_7"
SMITH = "intercom:contact_1"


@pytest.fixture
async def ingram() -> AsyncIterator[IngramServer]:
    async with IngramServer() as server:
        yield server


def provider_for(server: IngramServer) -> IngramProvider:
    return IngramProvider(
        api_key=API_KEY, base_url=server.url, agent_id="agt_support", timeout_seconds=5
    )


def request(*messages: ChatMessage, stream: bool = True, smith: str | None = SMITH) -> ModelRequest:
    return ModelRequest(
        messages=messages, tools=TOOLS, stream=stream, thread_key=THREAD, smith_key=smith
    )


HISTORY = (
    ChatMessage("system", "You are the support assistant."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello! How can I help?"),
    ChatMessage("user", "My invoice is wrong"),
    ChatMessage("user", "it charged me twice"),
)


@pytest.mark.parametrize("stream", [True, False])
async def test_smith_upsert_and_a_run_on_the_thread(ingram: IngramServer, stream: bool) -> None:
    ingram.enqueue(
        IngramStep(text="Sorry about that, let me check the invoice."), IngramStep(text="Done.")
    )
    deltas: list[str] = []

    async def on_delta(piece: str) -> None:
        deltas.append(piece)

    provider = provider_for(ingram)
    try:
        first = await provider.complete(request(*HISTORY, stream=stream), on_delta)
        second = await provider.complete(
            request(
                *HISTORY,
                ChatMessage("assistant", first.text),
                ChatMessage("user", "thanks"),
                stream=stream,
            )
        )
    finally:
        await provider.aclose()
    assert first.text == "Sorry about that, let me check the invoice."
    assert second.text == "Done."
    assert (first.usage.input_tokens, first.usage.output_tokens) == (50, 10)
    assert first.finish_reason == "end_turn"
    assert ("".join(deltas) == first.text) if stream else deltas == []
    # one upsert, cached for the second turn
    smith_posts = [r for r in ingram.requests if r.path == "/v1/smiths"]
    assert len(smith_posts) == 1
    assert smith_posts[0].json == {"external_id": SMITH, "agent_id": "agt_support"}
    runs = ingram.run_requests
    assert [r.path for r in runs] == ["/v1/smiths/smt_1/runs"] * 2
    assert runs[0].json["thread_id"] == THREAD and runs[0].json["stream"] is stream
    # only the new input: Ingram keeps the history; no system message
    assert runs[0].json["input"] == [
        {"role": "user", "content": "My invoice is wrong"},
        {"role": "user", "content": "it charged me twice"},
    ]
    assert runs[1].json["input"] == [{"role": "user", "content": "thanks"}]
    assert [t["function"]["name"] for t in runs[0].json["tools"]] == [
        "USER_INFO_LOOKUP",
        "ESCALATE",
    ]
    for sent in ingram.requests:
        assert sent.header("IC-Api-Version") == API_VERSION
        assert sent.header("Authorization") == f"Bearer {API_KEY}"


async def test_anonymous_smiths_keep_no_memory(ingram: IngramServer) -> None:
    ingram.enqueue(IngramStep(text="Hello visitor"))
    provider = provider_for(ingram)
    try:
        await provider.complete(request(ChatMessage("user", "hi"), smith="anon:9f2c"))
    finally:
        await provider.aclose()
    assert ingram.requests[0].json == {
        "external_id": "anon:9f2c",
        "agent_id": "agt_support",
        "auto_memory": False,
    }


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("calls_in_pause_frame", [True, False])
async def test_tool_pause_is_resumed_with_submit(
    ingram: IngramServer, stream: bool, calls_in_pause_frame: bool
) -> None:
    ingram.enqueue(
        IngramStep(
            text="Let me look you up.",
            tool_calls=(
                ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u1"}, id="call_a"),
                ScriptedToolCall("ESCALATE", {"reason": "double charge"}, id="call_b"),
            ),
            calls_in_pause_frame=calls_in_pause_frame,
        ),
        IngramStep(text="Thanks Ada, a colleague will refund you."),
    )
    provider = provider_for(ingram)
    try:
        paused = await provider.complete(request(*HISTORY, stream=stream))
        assert paused.finish_reason == "tool_calls"
        assert [(c.id, c.name, c.arguments) for c in paused.tool_calls] == [
            ("call_a", "USER_INFO_LOOKUP", {"user_id": "u1"}),
            ("call_b", "ESCALATE", {"reason": "double charge"}),
        ]
        assert provider.paused_run(THREAD) == "run_1"
        resumed = await provider.complete(
            request(
                *HISTORY,
                ChatMessage("assistant", paused.text, tool_calls=paused.tool_calls),
                ChatMessage("tool", '{"name": "Ada", "plan": "pro"}', tool_call_id="call_a"),
                ChatMessage("tool", "escalated", tool_call_id="call_b"),
                stream=stream,
            )
        )
    finally:
        await provider.aclose()
    assert resumed.text == "Thanks Ada, a colleague will refund you."
    assert resumed.tool_calls == ()
    assert provider.paused_run(THREAD) is None
    assert len(ingram.run_requests) == 1  # resumed, not restarted
    assert ingram.submits == [
        {
            "run_id": "run_1",
            "kind": "tool_result",
            "tool_call_id": "call_a",
            "result": {"name": "Ada", "plan": "pro"},
            "stream": False,
        },
        {
            "run_id": "run_1",
            "kind": "tool_result",
            "tool_call_id": "call_b",
            "result": {"output": "escalated"},
            "stream": stream,
        },
    ]
    assert ingram.runs["run_1"]["status"] == "completed"
    fetched = [r for r in ingram.requests if r.method == "GET"]
    assert bool(fetched) is (stream and not calls_in_pause_frame)


async def test_a_new_message_cancels_a_paused_run(ingram: IngramServer) -> None:
    ingram.enqueue(
        IngramStep(
            tool_calls=(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u1"}, id="call_a"),)
        ),
        IngramStep(text="Sure, what else?"),
    )
    provider = provider_for(ingram)
    try:
        await provider.complete(request(ChatMessage("user", "who am I?")))
        answer = await provider.complete(
            request(ChatMessage("user", "never mind, another question"))
        )
    finally:
        await provider.aclose()
    assert answer.text == "Sure, what else?"
    assert ingram.submits[0]["kind"] == "cancel"
    assert ingram.runs["run_1"]["status"] == "cancelled"
    assert len(ingram.run_requests) == 2


async def test_tool_results_without_a_paused_run_fail_for_good(ingram: IngramServer) -> None:
    provider = provider_for(ingram)
    call = ToolCall("call_z", "ESCALATE", "{}", {})
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(
                request(
                    ChatMessage("user", "x"),
                    ChatMessage("assistant", "", tool_calls=(call,)),
                    ChatMessage("tool", "ok", tool_call_id="call_z"),
                )
            )
    finally:
        await provider.aclose()
    assert not caught.value.retryable


@pytest.mark.parametrize("cut_after", [1, 3])
async def test_stream_cut_before_the_terminal_frame(ingram: IngramServer, cut_after: int) -> None:
    ingram.enqueue(
        IngramStep(text="This answer never finishes properly", cut_after=cut_after, cut_mode="eof")
    )
    provider = provider_for(ingram)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(ChatMessage("user", "hello")))
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert "status unknown" in str(caught.value)
    assert API_KEY not in str(caught.value)


async def test_a_cut_stream_is_answered_by_the_run_record(ingram: IngramServer) -> None:
    ingram.enqueue(IngramStep(text="Partial", cut_after=3, cut_mode="abort"))
    offline = CannedProvider("From the help center: …")
    chain = FallbackProvider(
        [
            ResilientProvider(
                provider_for(ingram), timeout_seconds=5, max_retries=2, backoff_initial=0.01
            ),
            offline,
        ]
    )
    deltas: list[str] = []

    async def on_delta(piece: str) -> None:
        deltas.append(piece)

    try:
        response = await chain.complete(request(ChatMessage("user", "hello")), on_delta)
    finally:
        await chain.aclose()
    # The run went on at Ingram: its record answers, not a second run nor the fallback.
    assert response.model == "ingram:agt_support"
    assert response.text == "Partial"
    assert len(ingram.run_requests) == 1
    assert "".join(deltas) == "Partial" and offline.calls == []


@pytest.mark.parametrize(
    "code,retryable", [("model_request_failed", True), ("model_key_missing", False)]
)
async def test_failed_runs(ingram: IngramServer, code: str, retryable: bool) -> None:
    ingram.enqueue(IngramStep(fail="upstream said no", fail_code=code))
    provider = provider_for(ingram)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(ChatMessage("user", "hello")))
    finally:
        await provider.aclose()
    assert caught.value.retryable is retryable
    assert code in str(caught.value)


async def test_approval_pause_is_not_an_answer(ingram: IngramServer) -> None:
    ingram.enqueue(IngramStep(text="I need approval", approval=True))
    provider = provider_for(ingram)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(ChatMessage("user", "delete my data")))
    finally:
        await provider.aclose()
    assert not caught.value.retryable
    assert "approval" in str(caught.value)


async def test_tolerates_nested_frames_and_hosted_tool_activity(ingram: IngramServer) -> None:
    ingram.enqueue(
        IngramStep(text="Found it on the web.", nested_data=True, hosted_tool="web_search")
    )
    provider = provider_for(ingram)
    try:
        response = await provider.complete(request(ChatMessage("user", "search please")))
    finally:
        await provider.aclose()
    assert response.text == "Found it on the web."
    assert response.tool_calls == ()


async def test_http_errors_are_mapped(ingram: IngramServer) -> None:
    ingram.enqueue(IngramStep(status=429, headers={"Retry-After": "4"}))
    provider = provider_for(ingram)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(ChatMessage("user", "hello")))
    finally:
        await provider.aclose()
    assert caught.value.retryable and caught.value.retry_after == 4.0


async def test_run_failure_text_never_carries_the_key(ingram: IngramServer) -> None:
    ingram.enqueue(
        IngramStep(fail=f"provider rejected key {API_KEY}", fail_code="model_key_missing")
    )
    provider = provider_for(ingram)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(ChatMessage("user", "hello")))
    finally:
        await provider.aclose()
    assert API_KEY not in str(caught.value) and "***" in str(caught.value)


async def test_a_run_left_paused_by_a_restart_is_cancelled(ingram: IngramServer) -> None:
    ingram.enqueue(
        IngramStep(
            tool_calls=(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u1"}, id="call_a"),)
        ),
        IngramStep(text="Back again, how can I help?"),
    )
    before = provider_for(ingram)
    try:
        await before.complete(request(ChatMessage("user", "who am I?")))
    finally:
        await before.aclose()  # the process dies mid-turn: its memory of the pause is gone
    after = provider_for(ingram)
    try:
        answer = await after.complete(request(ChatMessage("user", "hello again")))
    finally:
        await after.aclose()
    assert answer.text == "Back again, how can I help?"
    assert ingram.runs["run_1"]["status"] == "cancelled"
    assert [s["kind"] for s in ingram.submits] == ["cancel"]
    assert len(ingram.run_requests) == 3  # the paused run, the refused start (409), the new one
    assert len(ingram.runs) == 2


async def test_an_archived_smith_is_upserted_again(ingram: IngramServer) -> None:
    ingram.enqueue(IngramStep(text="first"), IngramStep(text="second"))
    provider = provider_for(ingram)
    try:
        await provider.complete(request(ChatMessage("user", "hi")))
        ingram.archive_smith(SMITH, "agt_support")
        answer = await provider.complete(request(ChatMessage("user", "hi again")))
    finally:
        await provider.aclose()
    assert answer.text == "second"
    assert [r.path for r in ingram.requests if r.method == "POST"] == [
        "/v1/smiths",
        "/v1/smiths/smt_1/runs",
        "/v1/smiths/smt_1/runs",  # 404: archived
        "/v1/smiths",
        "/v1/smiths/smt_2/runs",
    ]


async def test_the_least_recently_used_smith_id_is_forgotten_first(ingram: IngramServer) -> None:
    """Smith ids are kept for the ``max_tracked`` most recently used customers: a customer used
    again stays, the one left longest unused is upserted afresh next time."""
    ingram.enqueue(*(IngramStep(text=f"answer {n}") for n in range(6)))
    provider = IngramProvider(
        api_key=API_KEY, base_url=ingram.url, agent_id="agt_support", max_tracked=2
    )
    try:
        for smith in ("smith:a", "smith:b", "smith:a", "smith:c", "smith:a", "smith:b"):
            await provider.complete(request(ChatMessage("user", "hi"), smith=smith))
    finally:
        await provider.aclose()
    upserts = [r.json["external_id"] for r in ingram.requests if r.path == "/v1/smiths"]
    # a, b; a is a hit; c pushes out b (a was used more recently); a is a hit; b comes back.
    assert upserts == ["smith:a", "smith:b", "smith:c", "smith:b"]
