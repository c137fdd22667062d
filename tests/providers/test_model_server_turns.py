"""Whole turns through the daemon (``Application`` + ``Conversation``) against a scripted server
that behaves like llama-cpp-python: tools fire although it cannot stream a tool call, an answer
cut by the output cap, usage the server does not report — each as the stored run records it."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from bot.agent.conversation import Conversation, LocalConnector
from bot.app import Application
from bot.domain import StopReason
from bot.providers.base import TRUNCATION_NOTE, estimate_tokens
from tests.conftest import make_settings
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall


def remote(server: ScriptedModelServer, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": server.url,
        "api_key": "k",
        "name": "m",
        "fallback": ["offline"],
        "timeout_seconds": 5,
        **extra,
    }


async def test_tools_fire_on_a_server_that_cannot_stream_them(sqlite_url: str) -> None:
    async with ScriptedModelServer(streamed_tools="empty") as server:
        server.enqueue(
            ScriptedReply.calls(
                ScriptedToolCall("ESCALATE", {"reason": "asked for a person", "priority": "normal"})
            ),
            ScriptedReply.say("Your order ships tomorrow."),
        )
        settings = make_settings(sqlite_url, model=remote(server))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            first = Conversation(
                app, connector, agent_slug="support", smith_external_id="web:ada", turn_timeout=30
            )
            escalated = await first.say("I want to talk to a human")
            second = Conversation(
                app, connector, agent_slug="support", smith_external_id="web:bob", turn_timeout=30
            )
            answered = await second.say("When does my order ship?")
        sent = [r.json["stream"] for r in server.chat_requests]

    run = escalated.run
    assert run is not None and run.stop_reason is StopReason.ESCALATED
    assert [c.name for c in run.tool_calls] == ["ESCALATE"]
    assert run.model == "openai:scripted-model"  # the remote model answered, not the fallback
    assert escalated.thread.state.value == "escalated"
    assert answered.run is not None and answered.run.model == "openai:scripted-model"
    assert answered.replies == ["Your order ships tomorrow."]
    # one refused streamed try, then every call with tools whole, the next turn's first included
    assert sent == [True, False, False]
    assert server.refused_streams == 1


async def test_an_answer_cut_by_the_cap_is_recorded_on_the_run(sqlite_url: str) -> None:
    cut_off = (
        "Open the sign-in page and choose Forgot password. We email you a link. Open it and"
    )
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say(cut_off, finish_reason="length"))
        settings = make_settings(sqlite_url, model=remote(server, max_output_tokens=64))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            customer = Conversation(
                app, connector, agent_slug="support", smith_external_id="web:ada", turn_timeout=30
            )
            outcome = await customer.say("How do I reset my password?")

    assert server.chat_requests[0].json["max_tokens"] == 64
    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.END_TURN
    expected = (
        "Open the sign-in page and choose Forgot password. We email you a link."
        f"\n\n{TRUNCATION_NOTE}"
    )
    assert run.output_text == expected
    assert outcome.replies == [expected]
    assert run.usage.truncated is True


async def test_usage_a_server_does_not_report_is_estimated_on_the_run(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("Open the sign-in page.", report_usage=False))
        settings = make_settings(sqlite_url, model=remote(server))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            customer = Conversation(
                app, connector, agent_slug="support", smith_external_id="web:ada", turn_timeout=30
            )
            outcome = await customer.say("How do I reset my password?")

    run = outcome.run
    assert run is not None
    assert run.usage.estimated is True
    assert run.usage.input_tokens > 0 and run.usage.output_tokens > 0


@pytest.mark.parametrize("tokenizer", ["llama-cpp-python", "llama.cpp"])
async def test_usage_a_server_does_not_report_is_counted_by_its_tokenizer(
    sqlite_url: str, tokenizer: Literal["llama-cpp-python", "llama.cpp"]
) -> None:
    """The server's own tokenizer counts (its fake counts words): the run's figures are its
    counts, not the character estimate, and still marked estimated."""
    answer = "Open the sign-in page and choose Forgot password."
    async with ScriptedModelServer(tokenizer=tokenizer) as server:
        server.enqueue(ScriptedReply.say(answer, report_usage=False),
                       ScriptedReply.say(answer, report_usage=False))
        settings = make_settings(sqlite_url, model=remote(server))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            for who in ("web:ada", "web:bob"):
                customer = Conversation(
                    app, connector, agent_slug="support", smith_external_id=who, turn_timeout=30
                )
                outcome = await customer.say("How do I reset my password?")
        [_, request] = server.chat_requests
        counted = [r for r in server.requests if not r.path.endswith("/chat/completions")]

    run = outcome.run
    assert run is not None and run.usage.estimated is True
    asked = counted[2].json["input" if tokenizer == "llama-cpp-python" else "content"]
    # What was counted: every message's text and the tools offered.
    assert all(m["content"] in asked for m in request.messages if m.get("content"))
    assert '"name": "ESCALATE"' in asked
    per_message = 4  # base.TOKENS_PER_MESSAGE: the chat template's tokens, approximated
    assert run.usage.output_tokens == ScriptedModelServer.words(answer) == 8
    assert run.usage.input_tokens == (
        ScriptedModelServer.words(asked) + per_message * len(request.messages)
    )
    assert run.usage.output_tokens != estimate_tokens(answer)
    # Two counts per call (what went each way); the route is found once.
    assert len(counted) == 4


async def test_a_server_without_a_tokenizer_is_asked_once(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(*[ScriptedReply.say("Open the sign-in page.", report_usage=False)] * 2)
        settings = make_settings(sqlite_url, model=remote(server))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            for who in ("web:ada", "web:bob"):
                customer = Conversation(
                    app, connector, agent_slug="support", smith_external_id=who, turn_timeout=30
                )
                outcome = await customer.say("How do I reset my password?")
        asked = [r.path for r in server.requests if not r.path.endswith("/chat/completions")]

    assert asked == ["/extras/tokenize/count", "/tokenize"]  # both routes tried, on the first call
    assert outcome.run is not None and outcome.run.usage.estimated is True
    assert outcome.run.usage.output_tokens == estimate_tokens("Open the sign-in page.")
