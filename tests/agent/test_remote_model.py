"""The daemon's own runner (``build_runner``) with the OpenAI-compatible provider over real HTTP:
the tool loop with malformed arguments, and a failing remote model falling back along the provider
chain to the offline responder, which answers from the bundled knowledge base."""

from __future__ import annotations

import json

from bot.agent.builtin_tools import NOT_THE_CURRENT_CUSTOMER
from bot.agent.conversation import Conversation, LocalConnector
from bot.app import Application
from bot.domain import StopReason
from tests.conftest import make_settings
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall


async def test_a_failing_remote_model_falls_back_to_the_offline_responder(sqlite_url: str) -> None:
    async with ScriptedModelServer(rule=lambda request: ScriptedReply.error(500)) as server:
        settings = make_settings(
            sqlite_url,
            model={
                "provider": "openai",
                "base_url": server.url,
                "api_key": "k",
                "name": "m",
                "max_retries": 0,
                "fallback": ["offline"],
                "timeout_seconds": 5,
            },
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            customer = Conversation(
                app.daemon, connector, agent_slug="support", smith_external_id="web:ada", turn_timeout=30
            )
            outcome = await customer.say("How do I reset my password?")

    assert server.chat_requests, "the remote model was tried first"
    assert outcome.run is not None
    assert outcome.run.stop_reason is StopReason.END_TURN
    assert outcome.run.model == "offline"
    assert "Source: Resetting your password" in outcome.replies[0]


async def test_tool_loop_over_http_with_malformed_arguments(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(
            ScriptedReply.calls(
                ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "someone-else"}, id="c1"),
                ScriptedToolCall("ESCALATE", '{"reason": "broken', id="c2"),
                repeat_ids=True,
            ),
            ScriptedReply.say("Sorry about that, Ada."),
        )
        settings = make_settings(
            sqlite_url,
            model={
                "provider": "openai",
                "base_url": server.url,
                "api_key": "k",
                "name": "m",
                "fallback": [],
                "timeout_seconds": 5,
            },
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            customer = Conversation(
                app.daemon,
                connector,
                agent_slug="support",
                smith_external_id="web:ada",
                display_name="Ada",
                turn_timeout=30,
            )
            outcome = await customer.say("who is someone-else?")
        second = server.chat_requests[1].messages

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.END_TURN
    assert outcome.replies == ["Sorry about that, Ada."]
    assert [c.name for c in run.tool_calls] == ["USER_INFO_LOOKUP", "ESCALATE"]
    assert run.tool_calls[0].result == NOT_THE_CURRENT_CUSTOMER
    assert run.tool_calls[1].error is not None and run.tool_calls[1].arguments == {
        "_raw": '{"reason": "broken'
    }
    assistant = second[-3]
    assert assistant["role"] == "assistant" and assistant["content"] == ""
    tool_messages = [m for m in second if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c2"]
    assert "error" in json.loads(tool_messages[1]["content"])
    assert outcome.thread.state.value == "open"
